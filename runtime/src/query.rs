//! Query values built by `select!`, `scan!`, `view!` and `Store::recall_text`.

use std::fmt;
use std::marker::PhantomData;

use memdex_grammar::explain::Explain;
use memdex_grammar::ir::Lambda;
use memdex_grammar::sql::{OrderBy, SelectSpec};
use memdex_grammar::{Access, Aggregate, Dialect, Errors, ParamType, Positional, Prepared, Schema, Value};

use crate::error::Error;
use crate::model::{Col, Model};
use crate::store::Store;

/// A query prepared once per call site (macros) or per call (text form): checked,
/// normalised and planned IR. An error here is a bug in memdex (the macro already
/// checked what it could at compile time) or a text-form mistake; it surfaces from
/// `fetch`, never as a panic.
#[derive(Debug)]
pub struct Compiled {
    pub(crate) schema: &'static Schema,
    pub(crate) prepared: Result<Prepared, Errors>,
    pub(crate) aggregate: Option<Result<Aggregate, Errors>>,
    /// The query in text form, for messages and traces.
    pub(crate) source: String,
}

/// Prepares a lambda built by a macro. Parameter types are left to rustc.
pub fn compile<T: Model>(lambda: Lambda, access: Access) -> Compiled {
    let schema = T::schema();
    let source = memdex_grammar::print::lambda(&lambda);
    let prepared = memdex_grammar::prepare(
        schema,
        &lambda,
        &|_| ParamType::Unknown,
        access,
        memdex_grammar::normalise::DEFAULT_DISJUNCT_LIMIT,
    );
    Compiled { schema, prepared, aggregate: None, source }
}

/// Prepares a view: an optional filter lambda (indexed) and an aggregate lambda.
pub fn compile_view<T: Model>(filter: Option<Lambda>, aggregate: Lambda) -> Compiled {
    let schema = T::schema();
    let agg = memdex_grammar::check::aggregate(schema, &aggregate.body, &|_| ParamType::Unknown);
    let mut compiled = match filter {
        Some(f) => compile::<T>(f, Access::Indexed),
        None => Compiled {
            schema,
            prepared: Ok(Prepared { filter: None, plan: None, param: aggregate.param.clone() }),
            aggregate: None,
            source: String::new(),
        },
    };
    compiled.source = format!("{} / {}", compiled.source, memdex_grammar::print::lambda(&aggregate));
    compiled.aggregate = Some(agg);
    compiled
}

/// The in-memory predicate: the user's closure (macro form) or the IR interpreter
/// (text form).
pub(crate) enum Predicate<'a, T> {
    Closure(Box<dyn Fn(&T) -> bool + Send + Sync + 'a>),
    Interpreted,
}

/// The parameters of a query: positional (macro form) or named (text form).
#[derive(Clone, Debug)]
pub(crate) enum BoundParams {
    Positional(Positional),
    Named(Vec<(String, Value)>),
}

impl BoundParams {
    pub(crate) fn as_params(&self) -> &dyn memdex_grammar::Params {
        match self {
            BoundParams::Positional(p) => p,
            BoundParams::Named(n) => n,
        }
    }
}

/// A query served by index scans: `select!(Item, |c| …)` or a text query.
pub struct Select<'a, T: Model> {
    pub(crate) compiled: CompiledRef,
    pub(crate) params: BoundParams,
    pub(crate) predicate: Predicate<'a, T>,
    pub(crate) order: Vec<OrderBy>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: u64,
}

/// Where a query's compiled form lives: a call site's static, or owned (text form).
#[derive(Debug)]
pub(crate) enum CompiledRef {
    Static(&'static Compiled),
    Owned(Box<Compiled>),
}

impl std::ops::Deref for CompiledRef {
    type Target = Compiled;
    fn deref(&self) -> &Compiled {
        match self {
            CompiledRef::Static(c) => c,
            CompiledRef::Owned(c) => c,
        }
    }
}

/// Builds a `Select` (called by `select!`).
pub fn select<'a, T: Model>(
    compiled: &'static Compiled,
    params: Vec<Value>,
    predicate: impl Fn(&T) -> bool + Send + Sync + 'a,
) -> Select<'a, T> {
    Select {
        compiled: CompiledRef::Static(compiled),
        params: BoundParams::Positional(Positional(params)),
        predicate: Predicate::Closure(Box::new(predicate)),
        order: Vec::new(),
        limit: None,
        offset: 0,
    }
}

impl<'a, T: Model> Select<'a, T> {
    pub(crate) fn from_text(compiled: Compiled, params: Vec<(String, Value)>) -> Select<'a, T> {
        Select {
            compiled: CompiledRef::Owned(Box::new(compiled)),
            params: BoundParams::Named(params),
            predicate: Predicate::Interpreted,
            order: Vec::new(),
            limit: None,
            offset: 0,
        }
    }

    /// Orders by a column, ascending (`None` first, strings by bytes). May be
    /// repeated for ties.
    pub fn order_by(mut self, col: Col<T>) -> Self {
        self.order.push(OrderBy { column: col.column, desc: false });
        self
    }

    /// Orders by a column, descending.
    pub fn order_by_desc(mut self, col: Col<T>) -> Self {
        self.order.push(OrderBy { column: col.column, desc: true });
        self
    }

    /// At most `n` rows (applied in memory after ordering; never part of a cache key).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = n;
        self
    }

    /// The matching rows: index nodes and objects from the cache, the database on
    /// a miss.
    pub fn fetch(&self, store: &Store) -> Result<Vec<T>, Error> {
        crate::exec::fetch(store, self)
    }

    /// How many rows match (ignores limit and offset).
    pub fn count(&self, store: &Store) -> Result<u64, Error> {
        crate::exec::count(store, self)
    }

    /// The plan: per disjunct the index, the node key template and the residual;
    /// the SQL run on a miss; the round trips on a hot cache.
    pub fn explain(&self, dialect: Dialect) -> Explain {
        crate::exec::explain(self.compiled.schema, &self.compiled, &self.params, self.spec(), dialect)
    }

    /// The SQL this query runs on the database (placeholders, not values).
    pub fn sql(&self, dialect: Dialect) -> String {
        crate::exec::sql_text(self.compiled.schema, &self.compiled, &self.params, self.spec(), dialect)
    }

    pub(crate) fn spec(&self) -> (Vec<OrderBy>, Option<u64>, u64) {
        (self.order.clone(), self.limit, self.offset)
    }

    pub(crate) fn matches(&self, row: &T) -> bool {
        match &self.predicate {
            Predicate::Closure(f) => f(row),
            Predicate::Interpreted => match &self.compiled.prepared {
                Ok(Prepared { filter: Some(filter), .. }) => memdex_grammar::eval::matches(
                    self.compiled.schema,
                    filter,
                    &|c| row.column_value(c),
                    self.params.as_params(),
                ),
                Ok(Prepared { filter: None, .. }) => true,
                Err(_) => false,
            },
        }
    }
}

impl<T: Model> fmt::Debug for Select<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("query", &self.compiled.source)
            .field("params", &self.params)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .finish()
    }
}

/// A query run on the database, without the cache: `scan!(Item, |c| …)`.
pub struct Scan<'a, T: Model> {
    pub(crate) inner: Select<'a, T>,
}

/// Builds a `Scan` (called by `scan!`).
pub fn scan<'a, T: Model>(
    compiled: &'static Compiled,
    params: Vec<Value>,
    predicate: impl Fn(&T) -> bool + Send + Sync + 'a,
) -> Scan<'a, T> {
    Scan { inner: select(compiled, params, predicate) }
}

impl<'a, T: Model> Scan<'a, T> {
    pub fn order_by(self, col: Col<T>) -> Self {
        Scan { inner: self.inner.order_by(col) }
    }
    pub fn order_by_desc(self, col: Col<T>) -> Self {
        Scan { inner: self.inner.order_by_desc(col) }
    }
    pub fn limit(self, n: u64) -> Self {
        Scan { inner: self.inner.limit(n) }
    }
    pub fn offset(self, n: u64) -> Self {
        Scan { inner: self.inner.offset(n) }
    }
    /// The matching rows, from the database (ordering, limit and offset in SQL).
    pub fn fetch(&self, store: &Store) -> Result<Vec<T>, Error> {
        crate::exec::scan_fetch(store, &self.inner)
    }
    pub fn count(&self, store: &Store) -> Result<u64, Error> {
        crate::exec::scan_count(store, &self.inner)
    }
    pub fn sql(&self, dialect: Dialect) -> String {
        self.inner.sql(dialect)
    }
    pub fn explain(&self, dialect: Dialect) -> Explain {
        self.inner.explain(dialect)
    }
}

impl<T: Model> fmt::Debug for Scan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Scan").field(&self.inner).finish()
    }
}

/// What a view's aggregate returns: `u64` for `count()`, `Option<f64>` otherwise
/// (`None` over no rows).
pub trait AggregateOutput: Sized {
    #[doc(hidden)]
    fn from_aggregate(v: Option<f64>) -> Self;
}
impl AggregateOutput for u64 {
    fn from_aggregate(v: Option<f64>) -> u64 {
        v.map_or(0, |x| x as u64)
    }
}
impl AggregateOutput for Option<f64> {
    fn from_aggregate(v: Option<f64>) -> Option<f64> {
        v
    }
}

/// An aggregate over a model: `view!(Master, |m| avg(m.runs))` runs on the
/// database; with a filter, `view!(Master, |m| m.team == t, |m| avg(m.runs))`
/// fetches the filtered rows through the cache and aggregates in memory.
pub struct View<'a, T: Model, O> {
    pub(crate) filter: Option<Select<'a, T>>,
    pub(crate) compiled: &'static Compiled,
    pub(crate) params: BoundParams,
    _out: PhantomData<fn() -> O>,
}

/// Builds a `View` (called by `view!`). `predicate` is `None` for a whole-table view.
pub fn view<'a, T: Model, O: AggregateOutput>(
    compiled: &'static Compiled,
    params: Vec<Value>,
    predicate: Option<Box<dyn Fn(&T) -> bool + Send + Sync + 'a>>,
) -> View<'a, T, O> {
    let filter = predicate.map(|p| Select {
        compiled: CompiledRef::Static(compiled),
        params: BoundParams::Positional(Positional(params.clone())),
        predicate: Predicate::Closure(p),
        order: Vec::new(),
        limit: None,
        offset: 0,
    });
    View { filter, compiled, params: BoundParams::Positional(Positional(params)), _out: PhantomData }
}

impl<T: Model, O: AggregateOutput> View<'_, T, O> {
    pub fn fetch(&self, store: &Store) -> Result<O, Error> {
        crate::exec::view(store, self).map(O::from_aggregate)
    }

    pub fn sql(&self, dialect: Dialect) -> String {
        crate::exec::view_sql(self, dialect)
    }
}

impl<T: Model, O> fmt::Debug for View<'_, T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View").field("query", &self.compiled.source).finish()
    }
}

#[allow(dead_code)]
pub(crate) fn spec_of<'b>(
    order: &'b [OrderBy],
    limit: Option<u64>,
    offset: u64,
    filter: Option<&'b memdex_grammar::Expr>,
) -> SelectSpec<'b> {
    SelectSpec { filter, order, limit, offset: (offset > 0).then_some(offset) }
}
