//! The query console behind `cargo run --example console`: Python-lambda text
//! queries against the shop's models, one line at a time, with commands to explain
//! a query, show its SQL, trace its cache conversation and bind free names.
//!
//! [`Console::line`] takes one line and writes its answer; it never panics on what
//! it is given, whatever the text: a malformed query, an unknown model or command,
//! a value that does not parse are all answered with a message, and the console
//! carries on. Reading lines (with editing and history, or plainly from a pipe) is
//! the example program's job.

use std::io::{self, Write};
use std::marker::PhantomData;

use memdex::grammar::{self, Errors, ExprKind, Span};
use memdex::{Dialect, Model, Schema, Store, StoreBuilder, Value};

use crate::conversation::ConversationLog;
use crate::shop_models::{self, CartLine, Customer, Item, Master};
use crate::table;

/// The most rows a query prints; the rest are counted.
const MAX_PRINTED_ROWS: usize = 50;

/// What the console should do after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Read another line.
    Continue,
    /// `:quit` was given.
    Quit,
}

/// The console's state: the store, the model queries run against, the names bound
/// with `:let`, and whether the cache conversation is printed.
#[derive(Debug)]
pub struct Console {
    store: Store,
    log: ConversationLog,
    models: Vec<Box<dyn Table>>,
    current: usize,
    bindings: Vec<(String, Value)>,
    trace: bool,
}

const HELP: &str = "\
A line is a query in Python lambda syntax, run against the current model:
  lambda i: i.category_id == 5 and i.price > 20.0
or against another model named before a colon:
  customer: lambda c: c.first_name.startswith(\"m\")
Free names in a query are bound with :let.

Commands:
  :model NAME           run the following queries against NAME (see :models)
  :models               the models, their fields and their indexes
  :explain QUERY        the plan: node keys, residual filter, SQL, round trips
  :sql DIALECT QUERY    the SQL of QUERY for sqlite, postgres or mysql
  :let NAME = VALUE     bind a free name (an int, a float, a string, a list such as [1, 2]);
                        :let alone lists the bindings
  :trace on|off         print the cache conversation of each query
  :stats                the store's counters
  :help                 this text
  :quit                 leave (end of input does too)
";

impl Console {
    /// Builds the store from `builder` (with its cache conversation sent to the
    /// console, for `:trace`) and creates the shop's tables where they are missing.
    ///
    /// # Errors
    ///
    /// The store's, when it cannot be built or a table cannot be created.
    pub fn open(builder: StoreBuilder) -> Result<Console, memdex::Error> {
        let log = ConversationLog::new();
        let store = log.attach(builder).build()?;
        shop_models::migrate(&store)?;
        let models: Vec<Box<dyn Table>> = vec![
            Box::new(Of::<Item>::new()),
            Box::new(Of::<CartLine>::new()),
            Box::new(Of::<Customer>::new()),
            Box::new(Of::<Master>::new()),
        ];
        Ok(Console { store, log, models, current: 0, bindings: Vec::new(), trace: false })
    }

    /// Writes the shop's sample data (for an empty database).
    ///
    /// # Errors
    ///
    /// The database's, for instance when the rows exist already.
    pub fn load_sample_data(&self) -> Result<(), memdex::Error> {
        shop_models::insert_sample_data(&self.store)
    }

    /// The database and the cache, for the banner.
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// The prompt: the current model's table name.
    pub fn prompt(&self) -> String {
        format!("{}> ", self.model().schema().table)
    }

    /// Answers one line: a query, a `:command`, a `# comment` or nothing.
    ///
    /// # Errors
    ///
    /// Only `out`'s: everything wrong with the line itself is written to `out`.
    pub fn line(&mut self, input: &str, out: &mut impl Write) -> io::Result<Next> {
        // A file saved with a byte order mark starts its first line with one.
        let input = input.trim().trim_start_matches('\u{feff}');
        if input.is_empty() || input.starts_with('#') {
            return Ok(Next::Continue);
        }
        let Some(command) = input.strip_prefix(':') else {
            self.query(input, out)?;
            return Ok(Next::Continue);
        };
        let (name, argument) = split_word(command);
        match name {
            "quit" | "q" | "exit" => return Ok(Next::Quit),
            "help" | "h" | "?" => write!(out, "{HELP}")?,
            "models" => self.list_models(out)?,
            "model" => self.choose_model(argument, out)?,
            "explain" => self.explain(argument, out)?,
            "sql" => self.sql(argument, out)?,
            "let" => self.bind(argument, out)?,
            "trace" => self.set_trace(argument, out)?,
            "stats" => writeln!(out, "{:#?}", self.store.stats())?,
            _ => writeln!(out, "error: unknown command `:{name}`; :help lists the commands")?,
        }
        Ok(Next::Continue)
    }

    fn model(&self) -> &dyn Table {
        // `current` only ever holds an index into `models`, which is never empty.
        &*self.models[self.current]
    }

    fn find_model(&self, name: &str) -> Result<usize, String> {
        let wanted = name.replace('_', "").to_ascii_lowercase();
        self.models
            .iter()
            .position(|m| {
                let schema = m.schema();
                schema.table.replace('_', "").eq_ignore_ascii_case(&wanted)
                    || schema.model.eq_ignore_ascii_case(&wanted)
            })
            .ok_or_else(|| {
                let names: Vec<&str> = self.models.iter().map(|m| m.schema().table.as_str()).collect();
                format!("no model `{name}`; the models are {}", names.join(", "))
            })
    }

    /// Splits `customer: lambda c: …` into the model and the query; a query without
    /// a model name before its first colon runs against the current model.
    fn split_query<'q>(&self, input: &'q str) -> Result<(usize, &'q str), String> {
        if let Some((before, after)) = input.split_once(':') {
            let before = before.trim();
            let is_name = !before.is_empty() && before.chars().all(|c| c.is_alphanumeric() || c == '_');
            if is_name && before != "lambda" {
                let model = self.find_model(before)?;
                let query = after.trim();
                if query.is_empty() {
                    return Err(format!("a query is missing after `{before}:`"));
                }
                return Ok((model, query));
            }
        }
        Ok((self.current, input))
    }

    fn params(&self) -> Vec<(&str, Value)> {
        self.bindings.iter().map(|(name, value)| (name.as_str(), value.clone())).collect()
    }

    fn query(&self, input: &str, out: &mut impl Write) -> io::Result<()> {
        let (model, text) = match self.split_query(input) {
            Ok(found) => found,
            Err(message) => return writeln!(out, "error: {message}"),
        };
        let params = self.params();
        let table = &*self.models[model];
        let (rows, conversation) = self.log.record(|| table.fetch(&self.store, text, &params));
        match rows {
            Ok(rows) => {
                table::write(out, "", &table.header(), &rows, MAX_PRINTED_ROWS)?;
                let plural = if rows.len() == 1 { "" } else { "s" };
                writeln!(out, "({} row{plural})", rows.len())?;
            }
            Err(error) => writeln!(out, "{}", error_text(&error))?,
        }
        if self.trace {
            for line in conversation {
                writeln!(out, "  | {line}")?;
            }
        }
        Ok(())
    }

    fn explain(&self, argument: &str, out: &mut impl Write) -> io::Result<()> {
        self.write_description(argument, Description::Plan(self.store.dialect()), out)
    }

    fn sql(&self, argument: &str, out: &mut impl Write) -> io::Result<()> {
        let (name, query) = split_word(argument);
        let dialect = match name.to_ascii_lowercase().as_str() {
            "sqlite" => Dialect::Sqlite,
            "postgres" | "postgresql" | "pg" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::MySql,
            _ => return writeln!(out, "error: `:sql` takes a dialect first: sqlite, postgres or mysql"),
        };
        self.write_description(query, Description::Sql(dialect), out)
    }

    /// Writes what `wanted` asks of the query in `argument` (which may name its
    /// model), or why there is none.
    fn write_description(&self, argument: &str, wanted: Description, out: &mut impl Write) -> io::Result<()> {
        if argument.is_empty() {
            return writeln!(out, "error: a query is missing after the command");
        }
        let (model, text) = match self.split_query(argument) {
            Ok(found) => found,
            Err(message) => return writeln!(out, "error: {message}"),
        };
        match self.models[model].describe(&self.store, text, &self.params(), wanted) {
            Ok(answer) => writeln!(out, "{answer}"),
            Err(error) => writeln!(out, "{}", error_text(&error)),
        }
    }

    fn list_models(&self, out: &mut impl Write) -> io::Result<()> {
        for (i, model) in self.models.iter().enumerate() {
            let schema = model.schema();
            let marker = if i == self.current { "*" } else { " " };
            let fields: Vec<String> = schema
                .columns
                .iter()
                .map(|c| format!("{}: {:?}{}", c.field, c.ty, if c.nullable { "?" } else { "" }))
                .collect();
            writeln!(out, "{marker} {} ({}): {}", schema.table, schema.model, fields.join(", "))?;
            writeln!(out, "    indexes: {}", schema.describe_indexes())?;
        }
        Ok(())
    }

    fn choose_model(&mut self, argument: &str, out: &mut impl Write) -> io::Result<()> {
        if argument.is_empty() {
            return writeln!(out, "the current model is {}", self.model().schema().table);
        }
        match self.find_model(argument) {
            Ok(model) => {
                self.current = model;
                writeln!(out, "queries now run against {}", self.model().schema().table)
            }
            Err(message) => writeln!(out, "error: {message}"),
        }
    }

    fn set_trace(&mut self, argument: &str, out: &mut impl Write) -> io::Result<()> {
        match argument {
            "on" => self.trace = true,
            "off" => self.trace = false,
            "" => {}
            _ => return writeln!(out, "error: `:trace` takes on or off"),
        }
        writeln!(out, "trace is {}", if self.trace { "on" } else { "off" })
    }

    fn bind(&mut self, argument: &str, out: &mut impl Write) -> io::Result<()> {
        if argument.is_empty() {
            if self.bindings.is_empty() {
                return writeln!(out, "nothing is bound; :let NAME = VALUE binds a name");
            }
            for (name, value) in &self.bindings {
                writeln!(out, "{name} = {value}")?;
            }
            return Ok(());
        }
        let Some((name, value)) = argument.split_once('=') else {
            return writeln!(out, "error: `:let` takes NAME = VALUE");
        };
        let (name, value) = (name.trim(), value.trim());
        if !is_free_name(name) {
            return writeln!(out, "error: `{name}` cannot be a free name in a query");
        }
        match parse_value(value) {
            Ok(value) => {
                writeln!(out, "{name} = {value}")?;
                match self.bindings.iter_mut().find(|(bound, _)| bound == name) {
                    Some(binding) => binding.1 = value,
                    None => self.bindings.push((name.to_owned(), value)),
                }
                Ok(())
            }
            Err(message) => writeln!(out, "{message}"),
        }
    }
}

/// The first word and the rest, both trimmed.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

/// A query error as the console prints it. Parse errors already start with
/// `error:` and carry their caret; the others get the prefix here.
fn error_text(error: &memdex::Error) -> String {
    match error {
        memdex::Error::Query { rendered, .. } => rendered.clone(),
        other => format!("error: {other}"),
    }
}

/// Whether `name` is what the query language reads as a free name (a parameter),
/// decided by the language's own parser so that keywords and odd characters are
/// refused exactly as a query would refuse them.
fn is_free_name(name: &str) -> bool {
    match grammar::text::parse(&format!("lambda row: {name}")) {
        Ok(lambda) => matches!(&lambda.body.kind, ExprKind::Param(parsed) if parsed == name),
        Err(_) => false,
    }
}

/// Parses a `:let` value: a literal of the query language (an int, a float, a
/// string, `True`, `False`, `None`), or a list or tuple of them. The language's
/// parser reads it, so strings, escapes and numbers are spelled exactly as in a
/// query; its errors point into `text` with a caret.
fn parse_value(text: &str) -> Result<Value, String> {
    const SCALAR: &str = "lambda row: ";
    // A list is only a value of the language on the right of `in`, so it is parsed
    // there; `row.field` is never checked against a model.
    const LIST: &str = "lambda row: row.field in ";
    let is_list = text.starts_with('[') || text.starts_with('(');
    let prefix = if is_list { LIST } else { SCALAR };
    let not_a_value = || {
        format!(
            "error: `{text}` is not a value: use an int, a float, a string, True, False, None, or a list such as [1, 2]"
        )
    };
    let lambda = match grammar::text::parse(&format!("{prefix}{text}")) {
        Ok(lambda) => lambda,
        // A syntax error is shown with its caret. Any other error is about what the
        // text would mean in a query (a field, a call), and would name the made-up
        // `row` around it: it is simply not a value.
        Err(errors) if errors.iter().all(|e| matches!(e.kind, grammar::ErrorKind::Syntax { .. })) => {
            return Err(render_in(errors, text, prefix.len()));
        }
        Err(_) => return Err(not_a_value()),
    };
    let value = match &lambda.body.kind {
        ExprKind::In { haystack: grammar::ir::Haystack::Items(items), .. } if is_list => {
            items.iter().map(|item| literal(&item.kind)).collect::<Option<Vec<Value>>>().map(Value::List)
        }
        kind if !is_list => literal(kind),
        _ => None,
    };
    value.ok_or_else(not_a_value)
}

/// The value of a literal or a negated number.
fn literal(kind: &ExprKind) -> Option<Value> {
    match kind {
        ExprKind::Lit(value) => Some(value.clone()),
        ExprKind::Neg(inner) => match literal(&inner.kind)? {
            Value::Int(i) => i.checked_neg().map(Value::Int),
            Value::Float(x) => Some(Value::Float(-x)),
            _ => None,
        },
        _ => None,
    }
}

/// Errors found in `prefix + text`, rendered against `text` alone.
fn render_in(mut errors: Errors, text: &str, prefix: usize) -> String {
    for error in &mut errors.0 {
        let start = (error.span.start as usize).saturating_sub(prefix);
        let end = (error.span.end as usize).saturating_sub(prefix);
        error.span = Span::new(start, end);
    }
    errors.render(text)
}

/// Where the console's data lives, as `MEMDEX_DATABASE_URL` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// `sqlite::memory:`: an empty in-memory SQLite database.
    SqliteInMemory,
    /// `sqlite://path` or `sqlite:path`: a SQLite file (created when missing).
    SqliteFile(String),
    /// `postgres://…` or `postgresql://…`, handed to the PostgreSQL client as it is.
    Postgres(String),
}

impl Database {
    /// Reads a database URL. (`StoreBuilder::url` will replace this function and
    /// [`Database::configure`].)
    ///
    /// # Errors
    ///
    /// A message naming what is wrong: an unknown scheme, or no path.
    pub fn from_url(url: &str) -> Result<Database, String> {
        if url == "sqlite::memory:" {
            return Ok(Database::SqliteInMemory);
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(format!("`{url}` names no file: write sqlite://path or sqlite::memory:"));
            }
            return Ok(Database::SqliteFile(path.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        Err(format!(
            "`{url}` is not a database URL memdex's console reads: use sqlite://path, sqlite::memory: or postgres://…"
        ))
    }

    /// The builder with this database chosen.
    pub fn configure(&self, builder: StoreBuilder) -> StoreBuilder {
        match self {
            Database::SqliteInMemory => builder.sqlite_in_memory(),
            Database::SqliteFile(path) => builder.sqlite(path.as_str()),
            Database::Postgres(url) => builder.postgres(url.as_str()),
        }
    }
}

/// The memcached servers of `MEMDEX_MEMCACHED` (`host:port,host:port`).
pub fn memcached_servers(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|server| !server.is_empty()).map(str::to_owned).collect()
}

/// One model as the console uses it: everything it needs, with the model's type
/// erased so that the console can hold several.
trait Table: std::fmt::Debug {
    fn schema(&self) -> &'static Schema;
    fn header(&self) -> Vec<&'static str>;
    /// The rows a text query returns, sorted by key, one value per column.
    fn fetch(&self, store: &Store, text: &str, params: &[(&str, Value)]) -> Result<Vec<Vec<Value>>, memdex::Error>;
    /// The query's plan or its SQL in `dialect`.
    fn describe(
        &self,
        store: &Store,
        text: &str,
        params: &[(&str, Value)],
        wanted: Description,
    ) -> Result<String, memdex::Error>;
}

/// What `:explain` and `:sql` show of a query.
#[derive(Clone, Copy, Debug)]
enum Description {
    /// The plan, with its SQL in this dialect.
    Plan(Dialect),
    /// The SQL in this dialect.
    Sql(Dialect),
}

/// The [`Table`] of model `T`.
struct Of<T>(PhantomData<fn() -> T>);

impl<T> Of<T> {
    fn new() -> Of<T> {
        Of(PhantomData)
    }
}

impl<T> std::fmt::Debug for Of<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

impl<T: Model> Table for Of<T> {
    fn schema(&self) -> &'static Schema {
        T::schema()
    }

    fn header(&self) -> Vec<&'static str> {
        table::header_of::<T>()
    }

    fn fetch(&self, store: &Store, text: &str, params: &[(&str, Value)]) -> Result<Vec<Vec<Value>>, memdex::Error> {
        let mut rows = store.recall_text::<T>(text, params)?;
        // A query without ordering may come back in any order; sorted by key, the
        // same query prints the same table every time.
        rows.sort_by(|a, b| a.key().into().order(&b.key().into()));
        Ok(table::values_of(&rows))
    }

    fn describe(
        &self,
        store: &Store,
        text: &str,
        params: &[(&str, Value)],
        wanted: Description,
    ) -> Result<String, memdex::Error> {
        let select = store.select_text::<T>(text, params)?;
        Ok(match wanted {
            Description::Plan(dialect) => select.explain(dialect).to_string(),
            Description::Sql(dialect) => select.sql(dialect),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A console on the shop's sample data, in memory, with the in-process cache.
    fn shop_console() -> Console {
        let console = Console::open(Store::builder().sqlite_in_memory().in_process_cache()).expect("the store opens");
        console.load_sample_data().expect("the sample data loads");
        console
    }

    /// Everything the console writes for `input`'s lines, given one by one to a
    /// fresh console.
    fn answer(input: &str) -> String {
        let mut console = shop_console();
        let mut out = Vec::new();
        for line in input.lines() {
            console.line(line, &mut out).expect("a Vec takes every write");
        }
        String::from_utf8(out).expect("the console writes UTF-8")
    }

    /// Checks the console's whole answer to `input`.
    fn check(input: &str, expect: &str) {
        assert_eq!(answer(input), expect, "the answer to:\n{input}");
    }

    #[test]
    fn a_query_prints_its_rows_as_a_table() {
        check(
            "lambda i: i.category_id == 5 and i.price > 40.0",
            "  id  category_id  name   price
2222            5  desk   129.0
3333            5  chair   49.0
4444            5  rug     80.0
(3 rows)
",
        );
    }

    #[test]
    fn a_model_named_before_the_query_runs_it_there() {
        check(
            "customer: lambda c: c.first_name.startswith(\"m\")\nCartLine: lambda l: l.id == 10007",
            "id  first_name  last_name
 1  mira        Holm
 3  mikkel      Dahl
 5  max         Ek
(3 rows)
   id  cart_id  item_id  position
10007       42        8         7
(1 row)
",
        );
    }

    #[test]
    fn model_switches_the_model_and_the_prompt() {
        let mut console = shop_console();
        assert_eq!(console.prompt(), "item> ");
        let mut out = Vec::new();
        console.line(":model master", &mut out).expect("written");
        console.line("lambda m: m.team == 'NYY'", &mut out).expect("written");
        assert_eq!(console.prompt(), "master> ");
        let out = String::from_utf8(out).expect("UTF-8");
        assert_eq!(
            out,
            "queries now run against master
id  team  name    runs
 3  NYY   Derek    110
 4  NYY   Bernie    98
(2 rows)
"
        );
    }

    #[test]
    fn free_names_are_bound_with_let() {
        check(
            ":let cats = [5, 11]\n:let cheap = 30.0\n:let\nlambda i: i.category_id in cats and i.price < cheap",
            "cats = (5, 11)
cheap = 30.0
cats = (5, 11)
cheap = 30.0
  id  category_id  name     price
   1           11  item 1     1.0
  11           11  item 11   11.0
  21           11  item 21   21.0
1111            5  lamp      19.5
(4 rows)
",
        );
    }

    #[test]
    fn let_reads_every_kind_of_value_and_rebinds() {
        check(
            ":let n = -3\n:let x = 2.5e3\n:let s = 'it''s'\n:let s = \"Ed\\\"s\"\n:let t = (1,)\n:let e = []\n:let\n",
            "n = -3
x = 2500.0
error: syntax error: expected an operator, `.`, `(`, `and`, `or` or end of input
 --> line 1, column 5
  |
1 | 'it''s'
  |     ^
s = \"Ed\\\"s\"
t = (1,)
e = ()
n = -3
x = 2500.0
s = \"Ed\\\"s\"
t = (1,)
e = ()
",
        );
    }

    #[test]
    fn let_refuses_what_is_not_a_name_or_a_value() {
        check(
            ":let 3x = 1\n:let and = 1\n:let y\n:let y = foo\n:let y = [1, c.x]\n:let y = [1, 2\n",
            "error: `3x` cannot be a free name in a query
error: `and` cannot be a free name in a query
error: `:let` takes NAME = VALUE
error: `foo` is not a value: use an int, a float, a string, True, False, None, or a list such as [1, 2]
error: `[1, c.x]` is not a value: use an int, a float, a string, True, False, None, or a list such as [1, 2]
error: syntax error: expected an operator, `.`, `(`, `,`, `]`, `and` or `or`
 --> line 1, column 6
  |
1 | [1, 2
  |      ^
",
        );
    }

    #[test]
    fn a_malformed_query_shows_its_caret_and_the_console_carries_on() {
        check(
            "lambda i: i.category_id == = 5\nlambda i: i.id == 1111",
            "error: syntax error: expected an expression
 --> line 1, column 28
  |
1 | lambda i: i.category_id == = 5
  |                            ^
  = hint: equality is `==`
  id  category_id  name  price
1111            5  lamp   19.5
(1 row)
",
        );
    }

    #[test]
    fn a_misspelt_field_is_pointed_at() {
        check(
            "customer: lambda c: c.fist_name == \"x\"",
            "error: `fist_name` is not a field of Customer; did you mean `first_name`?
 --> line 1, column 11
  |
1 | lambda c: c.fist_name == \"x\"
  |           ^^^^^^^^^^^
  = hint: the fields are id, first_name, last_name
",
        );
    }

    #[test]
    fn an_unbound_name_is_an_error_until_let_binds_it() {
        let out = answer("lambda i: i.category_id == cat\n:let cat = 13\nlambda i: i.category_id == cat");
        let (unbound, bound) = out.split_once("cat = 13\n").expect("the binding is echoed");
        assert!(unbound.starts_with("error:") && unbound.contains("cat"), "{unbound}");
        assert!(bound.ends_with("(20 rows)\n"), "{bound}");
    }

    #[test]
    fn an_unindexable_query_explains_itself() {
        let out = answer("lambda i: i.price > 3.0\n:explain lambda i: i.price > 3.0");
        let message = "error: memdex: no index of Item serves `i.price > 3.0`";
        assert_eq!(out.matches(message).count(), 2, "{out}");
        assert!(out.contains("indexes: id (key), category_id"), "{out}");
    }

    #[test]
    fn explain_shows_the_plan() {
        check(
            ":explain customer: lambda c: c.first_name.startswith('m') and c.last_name != 'Ek'",
            "plan for Customer: 1 disjunct, 2 round trips on a hot cache
  [1] c.first_name.startswith(\"m\") and c.last_name != \"Ek\"
      index first_name (prefix 1)  →  get memdex:customer:0:first_name[:1]=m
      residual: c.first_name.startswith(\"m\") and c.last_name != \"Ek\"
sql (on a miss): SELECT \"id\", \"first_name\", \"last_name\" FROM \"customer\" WHERE \"first_name\" GLOB ? AND \"last_name\" <> ?
",
        );
    }

    #[test]
    fn sql_is_printed_for_each_dialect() {
        check(
            ":sql postgres lambda i: i.category_id in (5, 6)\n:sql MySQL lambda i: i.category_id == 5\n:sql sqlite master: lambda m: m.team == 'SEA'\n:sql oracle lambda i: i.id == 1\n:sql postgres",
            "SELECT \"id\", \"category_id\", \"name\", \"price\" FROM \"item\" WHERE \"category_id\" IN ($1, $2)
SELECT `id`, `category_id`, `name`, `price` FROM `item` WHERE `category_id` = ?
SELECT \"id\", \"team\", \"name\", \"runs\" FROM \"master\" WHERE \"team\" = ?
error: `:sql` takes a dialect first: sqlite, postgres or mysql
error: a query is missing after the command
",
        );
    }

    #[test]
    fn trace_prints_the_cache_conversation_cold_then_hot() {
        let out = answer(
            ":trace on\nlambda i: i.category_id == 5\nlambda i: i.category_id == 5\n:trace off\nlambda i: i.id == 1",
        );
        let runs: Vec<&str> = out.split("(4 rows)\n").collect();
        assert_eq!(runs.len(), 3, "{out}");
        assert!(runs[0].starts_with("trace is on\n"), "{out}");
        assert!(runs[1].contains("  | get memdex:item:") && runs[1].contains("miss, lease won"), "cold: {}", runs[1]);
        assert!(runs[1].contains("  | SELECT"), "cold: {}", runs[1]);
        assert!(runs[2].contains("category_id=5") && runs[2].contains("hit ("), "hot: {}", runs[2]);
        assert!(!runs[2].contains("->  miss") && !runs[2].contains("  | SELECT"), "hot: {}", runs[2]);
        let after = runs[2].split_once("trace is off\n").expect("trace is turned off").1;
        assert!(!after.contains("  | "), "traced after :trace off: {after}");
    }

    #[test]
    fn commands_answer_and_quit_stops() {
        let mut console = shop_console();
        let mut out = Vec::new();
        for line in [":help", ":models", ":stats", ":trace", ":model", "# a comment", "", "   "] {
            assert_eq!(console.line(line, &mut out).expect("written"), Next::Continue, "{line}");
        }
        assert_eq!(console.line(":quit", &mut out).expect("written"), Next::Quit);
        let out = String::from_utf8(out).expect("UTF-8");
        assert!(out.starts_with("A line is a query"), "{out}");
        assert!(out.contains("* item (Item): id: Int, category_id: Int, name: Text, price: Float\n    indexes: id (key), category_id\n"), "{out}");
        assert!(out.contains("  customer (Customer): id: Int, first_name: Text, last_name: Text\n    indexes: id (key), first_name (prefix 1)\n"), "{out}");
        assert!(out.contains("Stats {\n    node_hits: 0,"), "{out}");
        assert!(out.ends_with("trace is off\nthe current model is item\n"), "{out}");
    }

    #[test]
    fn mistakes_are_answered_not_panicked_on() {
        check(
            ":frob\n:\n:trace maybe\n:model nope\nnope: lambda x: x.id == 1\n:explain\nitem:\n",
            "error: unknown command `:frob`; :help lists the commands
error: unknown command `:`; :help lists the commands
error: `:trace` takes on or off
error: no model `nope`; the models are item, cart_line, customer, master
error: no model `nope`; the models are item, cart_line, customer, master
error: a query is missing after the command
error: a query is missing after `item:`
",
        );
        // Odd lines of every shape: each gets an answer, and none panics.
        let odd = [
            "item:",
            "lambda",
            "lambda i:",
            "lambda i: i.id == 1 or",
            "lambda i: ((((((((((((((((((((((((((((((((((((((((i.id == 1))))))))))))))))))))))))))))))))))))))))",
            "lambda i: i.id == 99999999999999999999999",
            "lambda i: i.name == '\u{0}\u{7f}é🦀'",
            "lambda i: i.id == 1 and j.id == 2",
            "lambda i, j: i.id == 1",
            "customer: lambda c: c.first_name.startswith(c.last_name)",
            ":let x = 99999999999999999999999",
            ":let x = 'unterminated",
            ":sql postgres nope: lambda x: x",
            "\u{feff}lambda i: i.id == 1",
        ];
        let mut console = shop_console();
        for line in odd {
            let mut out = Vec::new();
            assert_eq!(console.line(line, &mut out).expect("written"), Next::Continue, "{line}");
            assert!(!out.is_empty(), "no answer to {line:?}");
        }
    }

    #[test]
    fn database_urls_name_the_backend() {
        assert_eq!(Database::from_url("sqlite::memory:"), Ok(Database::SqliteInMemory));
        assert_eq!(Database::from_url("sqlite://shop.db"), Ok(Database::SqliteFile("shop.db".into())));
        assert_eq!(Database::from_url("sqlite:///tmp/shop.db"), Ok(Database::SqliteFile("/tmp/shop.db".into())));
        assert_eq!(Database::from_url("sqlite:shop.db"), Ok(Database::SqliteFile("shop.db".into())));
        let postgres = "postgres://memdex@127.0.0.1:5432/shop";
        assert_eq!(Database::from_url(postgres), Ok(Database::Postgres(postgres.into())));
        let postgresql = "postgresql://memdex@localhost/shop";
        assert_eq!(Database::from_url(postgresql), Ok(Database::Postgres(postgresql.into())));
        for wrong in ["sqlite://", "mysql://root@localhost/shop", "shop.db", ""] {
            let message = Database::from_url(wrong).expect_err(wrong);
            assert!(message.contains("sqlite://path") || message.contains("names no file"), "{wrong}: {message}");
        }
    }

    #[test]
    fn memcached_lists_are_split_on_commas() {
        assert_eq!(memcached_servers("127.0.0.1:11211, 127.0.0.1:11212,"), ["127.0.0.1:11211", "127.0.0.1:11212"]);
        assert!(memcached_servers(" ").is_empty());
    }
}
