//! The queries of the LINQ post (`recall(Customer, lambda c: c.FirstName.startswith("m"))`,
//! `view(Master, lambda m: avg(m.Runs))`) and of the memcached-indices and
//! set-invalidation posts, each written twice: as a Rust closure (`select!`,
//! `view!`) and as Python-lambda text (`Store::select_text`). For each query it
//! prints both forms, the SQL of every dialect, the plan, the rows and the cache
//! conversation (cold, then hot), and it fails when the two forms disagree, so
//! that running it is a test. `cargo run --example linq` runs it.

use std::error::Error;
use std::fmt::Debug;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use memdex::grammar::{self, Aggregate, Expr, Params};
use memdex::{Dialect, Model, Select, Store, Value, View, select, view};

use crate::conversation::ConversationLog;
use crate::shop_models::{self, CartLine, Customer, Item, Master, memcached_address};
use crate::table;

/// The dialects whose SQL is printed, with the names used in the output.
const DIALECTS: [(Dialect, &str); 3] =
    [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres"), (Dialect::MySql, "mysql")];

/// More rows than any query here returns, so every row is printed.
const MAX_ROWS: usize = 20;

/// The most lines of one conversation printed, of which the last
/// `CONVERSATION_TAIL` are the conversation's own last lines.
const MAX_CONVERSATION_LINES: usize = 16;
const CONVERSATION_TAIL: usize = 4;

/// Evaluates an expression and pairs it with its own source text, so that the
/// code printed next to a result is the code that produced it.
macro_rules! shown {
    ($e:expr) => {
        (stringify!($e), $e)
    };
}

/// Runs every query on a fresh in-memory SQLite store (with memcached when one
/// listens where the shop looks for it, else the in-process cache) and writes the
/// report to `out`.
///
/// # Errors
///
/// A store error, a write error, or the two forms of a query disagreeing (on rows,
/// an aggregate's value, or an aggregate's SQL).
pub fn run(out: &mut impl Write) -> Result<(), Box<dyn Error>> {
    let log = ConversationLog::new();
    let builder = log.attach(Store::builder().sqlite_in_memory());
    let builder = match memcached_address() {
        // The database is new on every run, so the keys must be too: a namespace
        // of this process and this run keeps earlier runs' nodes out of sight.
        Some(addr) => builder.memcached([addr.to_string()]).namespace(fresh_namespace()),
        None => builder.in_process_cache(),
    };
    let store = builder.build()?;
    writeln!(out, "memdex: the LINQ post's queries as Rust closures and as Python-lambda text")?;
    writeln!(out, "store: {}", store.describe())?;
    shop_models::migrate(&store)?;
    shop_models::insert_sample_data(&store)?;
    writeln!(out, "sample data: {}", shop_models::SAMPLE_DATA)?;
    writeln!(out, "each query runs as the closure first (a cold cache), then as text, through")?;
    writeln!(out, "store.select_text::<Model>(text, &[(name, value), …]), on what the closure cached")?;
    let report = Report { store: &store, log: &log };

    report.heading(out, 1, "recall(Customer, lambda c: c.FirstName.startswith(\"m\"))", "the LINQ post")?;
    let closure = shown!(select!(Customer, |c| c.first_name.starts_with("m")));
    let text = TextQuery::new("lambda c: c.first_name.startswith(\"m\")", &[]);
    report.compare_select(out, closure, &text, Order::ByKey)?;

    report.heading(out, 2, "view(Master, lambda m: avg(m.Runs))", "the LINQ post")?;
    let closure = shown!(view!(Master, |m| avg(m.runs)));
    report.compare_view(out, closure, &TextView { filter: None, aggregate: "lambda m: avg(m.runs)", params: &[] })?;

    report.heading(out, 3, "view(Master, lambda m: m.team == team, lambda m: avg(m.runs))", "a filtered view")?;
    let team = "SEA".to_string();
    let closure = shown!(view!(Master, |m| m.team == team, |m| avg(m.runs)));
    let params = [("team", Value::from(&team))];
    let text =
        TextView { filter: Some("lambda m: m.team == team"), aggregate: "lambda m: avg(m.runs)", params: &params };
    report.compare_view(out, closure, &text)?;

    report.heading(out, 4, "SELECT * FROM Item WHERE CategoryID = 5", "the memcached-indices post")?;
    let cat = 5;
    let closure = shown!(select!(Item, |i| i.category_id == cat));
    let params = [("cat", Value::from(cat))];
    report.compare_select(out, closure, &TextQuery::new("lambda i: i.category_id == cat", &params), Order::ByKey)?;

    report.heading(out, 5, "get_items_in_cart(cart_id=42, limit=10, offset=30)", "the set-invalidation post")?;
    let cart = 42;
    let closure = shown!(select!(CartLine, |l| l.cart_id == cart).order_by(CartLine::position()).limit(10).offset(30));
    let params = [("cart", Value::from(cart))];
    let text = TextQuery {
        paging: Some((".order_by(CartLine::position()).limit(10).offset(30)", |q| {
            q.order_by(CartLine::position()).limit(10).offset(30)
        })),
        ..TextQuery::new("lambda l: l.cart_id == cart", &params)
    };
    report.compare_select(out, closure, &text, Order::AsQueried)?;

    report.heading(out, 6, "categories 5 or 6, over 40.0", "the indices post's boolean operators, in DNF")?;
    let closure = shown!(select!(Item, |i| (i.category_id == 5 || i.category_id == 6) && i.price > 40.0));
    let text = TextQuery::new("lambda i: (i.category_id == 5 or i.category_id == 6) and i.price > 40.0", &[]);
    report.compare_select(out, closure, &text, Order::ByKey)?;

    report.heading(
        out,
        7,
        "move Item 3333 from category 5 to 6, then read category 5",
        "add eagerly, remove lazily",
    )?;
    let ((), write) =
        report.record(|| store.update(&Item { id: 3333, category_id: 6, name: "chair".into(), price: 49.0 }))?;
    report.conversation(out, "the update (appends 3333 to the node of category 6)", &write)?;
    let closure = shown!(select!(Item, |i| i.category_id == cat));
    let params = [("cat", Value::from(cat))];
    report.compare_select(out, closure, &TextQuery::new("lambda i: i.category_id == cat", &params), Order::ByKey)?;

    writeln!(out, "\nevery query: both forms agree")?;
    writeln!(out, "stats: {:?}", store.stats())?;
    Ok(())
}

/// A query's text form: the lambda, its bound names, and the ordering and paging
/// the closure form has too (in words, and as a function on the text form's
/// `Select`).
struct TextQuery<'a, T: Model> {
    lambda: &'a str,
    params: &'a [(&'a str, Value)],
    paging: Option<(&'a str, Paging<T>)>,
}

type Paging<T> = fn(Select<'static, T>) -> Select<'static, T>;

impl<'a, T: Model> TextQuery<'a, T> {
    fn new(lambda: &'a str, params: &'a [(&'a str, Value)]) -> TextQuery<'a, T> {
        TextQuery { lambda, params, paging: None }
    }
}

impl<T: Model> std::fmt::Display for TextQuery<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.lambda)?;
        write_bindings(f, self.params)?;
        if let Some((words, _)) = self.paging {
            write!(f, ", then {words}")?;
        }
        Ok(())
    }
}

/// `   where cat = 5, team = "SEA"` after a text query; nothing without bindings.
fn write_bindings(f: &mut std::fmt::Formatter<'_>, params: &[(&str, Value)]) -> std::fmt::Result {
    for (i, (name, value)) in params.iter().enumerate() {
        write!(f, "{}{name} = {value}", if i == 0 { "   where " } else { ", " })?;
    }
    Ok(())
}

/// Source text as `stringify!` gives it, on one line: it breaks long expressions
/// before a method call or after a comma.
fn one_line(source: &str) -> String {
    let mut line = String::with_capacity(source.len());
    for (i, piece) in source.lines().map(str::trim).enumerate() {
        if i > 0 && !piece.starts_with('.') {
            line.push(' ');
        }
        line.push_str(piece);
    }
    line
}

/// A namespace no earlier run used: the process id and a per-process count.
fn fresh_namespace() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    format!("linq{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed))
}

/// How two forms' rows are compared.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// The query orders its rows: the two lists must be equal as they are.
    AsQueried,
    /// The query does not order its rows: they are compared sorted by key.
    ByKey,
}

/// The store and the log its conversation goes to, for writing one query's report.
struct Report<'s> {
    store: &'s Store,
    log: &'s ConversationLog,
}

impl Report<'_> {
    fn heading(&self, out: &mut impl Write, number: usize, query: &str, from: &str) -> std::io::Result<()> {
        writeln!(out, "\n== {number}. {query}   ({from})")
    }

    /// Runs `f` and returns its result with the conversation it caused.
    fn record<R>(&self, f: impl FnOnce() -> Result<R, memdex::Error>) -> Result<(R, Vec<String>), memdex::Error> {
        let (result, lines) = self.log.record(f);
        Ok((result?, lines))
    }

    /// Writes a conversation; a long one (a page of a 1,000-line cart reads every
    /// line's object) is cut in the middle, with the number of lines left out.
    fn conversation(&self, out: &mut impl Write, what: &str, lines: &[String]) -> std::io::Result<()> {
        writeln!(out, "cache conversation, {what}:")?;
        let (head, tail) = if lines.len() > MAX_CONVERSATION_LINES {
            (MAX_CONVERSATION_LINES - CONVERSATION_TAIL, CONVERSATION_TAIL)
        } else {
            (lines.len(), 0)
        };
        for line in &lines[..head] {
            writeln!(out, "  | {line}")?;
        }
        if tail > 0 {
            writeln!(out, "  | … {} more lines …", lines.len() - head - tail)?;
            for line in &lines[lines.len() - tail..] {
                writeln!(out, "  | {line}")?;
            }
        }
        Ok(())
    }

    fn write_sql(&self, out: &mut impl Write, sql: impl Fn(Dialect) -> String) -> std::io::Result<()> {
        writeln!(out, "sql:")?;
        for (dialect, name) in DIALECTS {
            writeln!(out, "  {name:<9} {}", sql(dialect))?;
        }
        Ok(())
    }

    fn write_explain(&self, out: &mut impl Write, explain: &str) -> std::io::Result<()> {
        writeln!(out, "explain:")?;
        for line in explain.lines() {
            writeln!(out, "  {line}")?;
        }
        Ok(())
    }

    /// Both forms of a `select!`: the closure runs first on a cold cache, the text
    /// form after it on the nodes and objects the closure filled, which shows that
    /// both name the same keys.
    fn compare_select<T: Model + PartialEq + Debug>(
        &self,
        out: &mut impl Write,
        (closure_source, closure): (&str, Select<'_, T>),
        text: &TextQuery<'_, T>,
        order: Order,
    ) -> Result<(), Box<dyn Error>> {
        writeln!(out, "closure: {}", one_line(closure_source))?;
        writeln!(out, "text:    {text}")?;
        let mut text_select = self.store.select_text::<T>(text.lambda, text.params)?;
        if let Some((_, page)) = text.paging {
            text_select = page(text_select);
        }
        self.write_sql(out, |dialect| closure.sql(dialect))?;
        for (dialect, name) in DIALECTS {
            if text_select.sql(dialect) != closure.sql(dialect) {
                return Err(format!("the text form's {name} SQL differs: {}", text_select.sql(dialect)).into());
            }
        }
        // The text form's plan names its parameters as the text does; the closure's
        // would call them p0, p1, ….
        self.write_explain(out, &text_select.explain(self.store.dialect()).to_string())?;
        let (mut closure_rows, cold) = self.record(|| closure.fetch(self.store))?;
        let (mut text_rows, hot) = self.record(|| text_select.fetch(self.store))?;
        if let Order::ByKey = order {
            closure_rows.sort_by(|a, b| a.key().into().order(&b.key().into()));
            text_rows.sort_by(|a, b| a.key().into().order(&b.key().into()));
        }
        if closure_rows != text_rows {
            return Err(format!("the forms disagree:\n  closure: {closure_rows:?}\n  text:    {text_rows:?}").into());
        }
        writeln!(out, "rows ({}, the same from both forms):", closure_rows.len())?;
        table::write(out, "  ", &table::header_of::<T>(), &table::values_of(&closure_rows), MAX_ROWS)?;
        self.conversation(out, "cold (the closure)", &cold)?;
        self.conversation(out, "hot (the text form)", &hot)?;
        Ok(())
    }

    /// Both forms of a `view!`. See [`TextView`] for how the text form runs.
    fn compare_view<T: Model>(
        &self,
        out: &mut impl Write,
        (closure_source, closure): (&str, View<'_, T, Option<f64>>),
        text: &TextView<'_>,
    ) -> Result<(), Box<dyn Error>> {
        writeln!(out, "closure: {}", one_line(closure_source))?;
        writeln!(out, "text:    {text}")?;
        self.write_sql(out, |dialect| closure.sql(dialect))?;
        let checked = text.check::<T>()?;
        for (dialect, name) in DIALECTS {
            let text_sql = checked.sql::<T>(dialect, text.params)?;
            if text_sql != closure.sql(dialect) {
                return Err(format!("the text form's {name} SQL differs: {text_sql}").into());
            }
        }
        let (closure_value, cold) = self.record(|| closure.fetch(self.store))?;
        match text.filter {
            None => {
                self.write_explain(out, "a view of the whole table: one SQL query, the cache is not used")?;
                writeln!(out, "value: {closure_value:?}")?;
                writeln!(
                    out,
                    "  (the text form runs the same SQL, checked above: memdex has no text-form view to run yet)"
                )?;
                self.conversation(out, "the closure", &cold)?;
            }
            Some(filter) => {
                let rows = self.store.select_text::<T>(filter, text.params)?;
                self.write_explain(out, &rows.explain(self.store.dialect()).to_string())?;
                let (rows, hot) = self.record(|| rows.fetch(self.store))?;
                let text_value = checked.over(&rows, &named(text.params));
                if text_value != closure_value {
                    return Err(format!("the forms disagree: closure {closure_value:?}, text {text_value:?}").into());
                }
                writeln!(out, "value: {closure_value:?} (the same from both forms)")?;
                self.conversation(out, "cold (the closure)", &cold)?;
                self.conversation(out, "hot (the text form)", &hot)?;
            }
        }
        Ok(())
    }
}

/// A view written as text: `view(Master, lambda m: m.team == team, lambda m: avg(m.runs))`.
///
/// memdex's store has no text-form view (a `Store::view_text`) yet, so this one is
/// put together from the public pieces the store itself uses: the filter, when
/// there is one, is an ordinary text query (`Store::select_text`, read through the
/// cache as a filtered `view!` is), and the aggregate is parsed and checked by the
/// same grammar `view!` lowers to, then computed over those rows by SQL's rules
/// (NULLs skipped, no rows: `None`). Its SQL comes from the same generator.
#[derive(Debug)]
struct TextView<'a> {
    filter: Option<&'a str>,
    aggregate: &'a str,
    params: &'a [(&'a str, Value)],
}

impl std::fmt::Display for TextView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(filter) = self.filter {
            write!(f, "{filter}, ")?;
        }
        f.write_str(self.aggregate)?;
        write_bindings(f, self.params)
    }
}

/// Bound values as the grammar reads them (it takes owned names, as the store does).
fn named(params: &[(&str, Value)]) -> Vec<(String, Value)> {
    params.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect()
}

/// A text view's filter and aggregate, checked against the model.
struct CheckedView {
    filter: Option<Expr>,
    aggregate: Aggregate,
}

impl TextView<'_> {
    fn check<T: Model>(&self) -> Result<CheckedView, Box<dyn Error>> {
        let schema = T::schema();
        let params = named(self.params);
        let types = grammar::params::types_of(&params);
        let filter = match self.filter {
            None => None,
            Some(source) => {
                let prepared = grammar::prepare_text(
                    schema,
                    source,
                    &types,
                    grammar::Access::Indexed,
                    grammar::normalise::DEFAULT_DISJUNCT_LIMIT,
                )
                .map_err(|errors| errors.render(source))?;
                prepared.filter
            }
        };
        let lambda = grammar::text::parse(self.aggregate).map_err(|errors| errors.render(self.aggregate))?;
        let aggregate =
            grammar::check::aggregate(schema, &lambda.body, &types).map_err(|errors| errors.render(self.aggregate))?;
        Ok(CheckedView { filter, aggregate })
    }
}

impl CheckedView {
    fn sql<T: Model>(&self, dialect: Dialect, params: &[(&str, Value)]) -> Result<String, Box<dyn Error>> {
        Ok(grammar::sql::aggregate(dialect, T::schema(), self.filter.as_ref(), &self.aggregate, &named(params))?.text)
    }

    /// The aggregate over `rows`, by SQL's rules.
    fn over<T: Model>(&self, rows: &[T], params: &dyn Params) -> Option<f64> {
        let schema = T::schema();
        let numbers: Vec<f64> = match &self.aggregate.arg {
            None => return Some(rows.len() as f64),
            Some(arg) => rows
                .iter()
                .filter_map(|row| {
                    grammar::eval::value(schema, arg, &|column| row.column_value(column), params).as_f64()
                })
                .collect(),
        };
        let sum: f64 = numbers.iter().sum();
        match self.aggregate.func {
            grammar::ir::AggFunc::Count => Some(numbers.len() as f64),
            _ if numbers.is_empty() => None,
            grammar::ir::AggFunc::Sum => Some(sum),
            grammar::ir::AggFunc::Avg => Some(sum / numbers.len() as f64),
            grammar::ir::AggFunc::Min => numbers.iter().copied().reduce(f64::min),
            grammar::ir::AggFunc::Max => numbers.iter().copied().reduce(f64::max),
        }
    }
}
