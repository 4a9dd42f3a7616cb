//! Query values built by `select!`, `scan!`, `view!` and `Store::select_text`, and
//! how each runs on a store (blocking; `fetch_async` and friends with feature
//! `tokio`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use memdex_grammar::explain::Explain;
use memdex_grammar::keys::KeySpace;
use memdex_grammar::sql::{self, OrderBy, SelectSpec};
use memdex_grammar::{Aggregate, Dialect, Positional, Value};

use crate::engine::database::{Page, aggregate_rows};
use crate::engine::window;
use crate::error::Error;
#[cfg(feature = "tokio")]
use crate::handle::AsyncStore;
use crate::handle::Store;
use crate::model::{Col, Model};
use crate::prepared::{BoundParams, Compiled, CompiledRef, Filter, Predicate};

/// A query served by index scans: `select!(Item, |c| …)` or a text query.
pub struct Select<'a, T: Model> {
    pub(crate) filter: Filter<'a, T>,
    pub(crate) order: Vec<OrderBy>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: u64,
    /// Keyset paging: every column value of the last row seen.
    pub(crate) after: Option<Vec<Value>>,
}

/// Builds a `Select` (called by `select!`).
pub fn select<'a, T: Model>(
    compiled: &'static Compiled,
    params: Vec<Value>,
    predicate: impl Fn(&T) -> bool + Send + Sync + 'a,
) -> Select<'a, T> {
    Select::new(Filter {
        compiled: CompiledRef::Static(compiled),
        params: BoundParams::Positional(Positional(params)),
        predicate: Predicate::Closure(Box::new(predicate)),
    })
}

impl<'a, T: Model> Select<'a, T> {
    fn new(filter: Filter<'a, T>) -> Select<'a, T> {
        Select { filter, order: Vec::new(), limit: None, offset: 0, after: None }
    }

    pub(crate) fn from_text(compiled: Arc<Compiled>, params: Vec<(String, Value)>) -> Select<'a, T> {
        Select::new(Filter {
            compiled: CompiledRef::Shared(compiled),
            params: BoundParams::Named(params),
            predicate: Predicate::Interpreted(std::sync::OnceLock::new()),
        })
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

    /// Keyset paging: only the rows after `last` in this query's order (its
    /// `order_by` columns, then the key), typically the last row of the previous
    /// page. Unlike `offset`, the next page neither repeats nor skips a row when
    /// rows before it are inserted or deleted in between; and on an ordered index
    /// it reads only the page's objects however deep the page is.
    pub fn after(mut self, last: &T) -> Self {
        let columns = T::schema().columns.len();
        self.after = Some((0..columns).map(|c| last.column_value(c)).collect());
        self
    }

    pub(crate) fn page(&self) -> Page<'_> {
        Page { order: &self.order, limit: self.limit, offset: self.offset, after: self.after.as_deref() }
    }

    /// The matching rows: index nodes and objects from the cache, the database on
    /// a miss.
    pub fn fetch(&self, store: &Store) -> Result<Vec<T>, Error> {
        store.driver.fetch(&self.filter, self.page())
    }

    /// How many rows match (ignores limit, offset and `after`).
    pub fn count(&self, store: &Store) -> Result<u64, Error> {
        Ok(store.driver.fetch(&self.filter, Page::ALL)?.len() as u64)
    }

    /// [`Select::fetch`] on the async store: the same rows, the same round trips.
    #[cfg(feature = "tokio")]
    pub async fn fetch_async(&self, store: &AsyncStore) -> Result<Vec<T>, Error> {
        store.driver.fetch(&self.filter, self.page()).await
    }

    /// [`Select::count`] on the async store.
    #[cfg(feature = "tokio")]
    pub async fn count_async(&self, store: &AsyncStore) -> Result<u64, Error> {
        Ok(store.driver.fetch(&self.filter, Page::ALL).await?.len() as u64)
    }

    /// The plan: per disjunct the index, the node key template and the residual;
    /// the SQL run on a miss; the round trips on a hot cache.
    pub fn explain(&self, dialect: Dialect) -> Explain {
        let compiled = &self.filter.compiled;
        let schema = compiled.schema;
        let sql = self.sql(dialect);
        let keys = KeySpace::new("memdex", schema, 0);
        let Ok(p) = &compiled.prepared else {
            return memdex_grammar::explain::explain(schema, None, &keys, sql, "c");
        };
        let page = self.page();
        let ordered = p.plan.as_ref().and_then(|plan| window::ordered_plan::<T>(plan, &page));
        let plan = ordered.as_ref().map(|(plan, _)| plan).or(p.plan.as_ref());
        let mut explain = memdex_grammar::explain::explain(schema, plan, &keys, sql, &p.param);
        explain.page = describe_page(schema, &page, ordered.as_ref().map(|(_, window)| window));
        explain
    }

    /// The SQL this query runs on the database (placeholders, not values).
    pub fn sql(&self, dialect: Dialect) -> String {
        let compiled = &self.filter.compiled;
        let filter = compiled.prepared.as_ref().ok().and_then(|p| p.filter.as_ref());
        let spec = SelectSpec {
            filter,
            order: &self.order,
            limit: self.limit,
            offset: (self.offset > 0).then_some(self.offset),
        };
        match sql::select(dialect, compiled.schema, spec, self.filter.params.as_params()) {
            Ok(q) => q.text,
            Err(e) => format!("-- cannot emit SQL: {e}"),
        }
    }
}

/// EXPLAIN's page line: the order and window, and whether an ordered index reads
/// only the page's objects or every listed object is read and sorted in memory.
fn describe_page(schema: &memdex_grammar::Schema, page: &Page<'_>, window: Option<&window::Window>) -> Option<String> {
    if page.order.is_empty() && page.limit.is_none() && page.offset == 0 && page.after.is_none() {
        return None;
    }
    let field = |c: usize| schema.columns.get(c).map_or("?", |c| c.field.as_str());
    let mut text = String::new();
    if !page.order.is_empty() {
        let order: Vec<String> =
            page.order.iter().map(|o| format!("{}{}", field(o.column), if o.desc { " desc" } else { "" })).collect();
        text.push_str(&format!("order by {}, then {}", order.join(", "), field(schema.key)));
    }
    let mut window_text = Vec::new();
    if page.after.is_some() {
        window_text.push("after the last row seen".to_owned());
    }
    if page.offset > 0 {
        window_text.push(format!("offset {}", page.offset));
    }
    if let Some(limit) = page.limit {
        window_text.push(format!("limit {limit}"));
    }
    if !window_text.is_empty() {
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&window_text.join(", "));
    }
    text.push_str(match window {
        Some(_) => {
            " — from the ordered index: the node, then only the page's objects (every object the node \
                    lists when a write since its last verified read left it unordered)"
        }
        None => " — in memory: every object the nodes list is read, then sorted and paged",
    });
    Some(text)
}

impl<T: Model> fmt::Debug for Select<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("query", &self.filter.compiled.source)
            .field("params", &self.filter.params)
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
    /// Orders by a column, ascending (in SQL when the filter's SQL is exact).
    pub fn order_by(self, col: Col<T>) -> Self {
        Scan { inner: self.inner.order_by(col) }
    }
    /// Orders by a column, descending.
    pub fn order_by_desc(self, col: Col<T>) -> Self {
        Scan { inner: self.inner.order_by_desc(col) }
    }
    /// At most `n` rows.
    pub fn limit(self, n: u64) -> Self {
        Scan { inner: self.inner.limit(n) }
    }
    /// Skips `n` rows.
    pub fn offset(self, n: u64) -> Self {
        Scan { inner: self.inner.offset(n) }
    }
    /// The matching rows, from the database (ordering, limit and offset in SQL).
    pub fn fetch(&self, store: &Store) -> Result<Vec<T>, Error> {
        store.driver.scan(&self.inner.filter, self.inner.page())
    }
    /// How many rows match, from the database.
    pub fn count(&self, store: &Store) -> Result<u64, Error> {
        store.driver.scan_count(&self.inner.filter)
    }
    /// [`Scan::fetch`] on the async store.
    #[cfg(feature = "tokio")]
    pub async fn fetch_async(&self, store: &AsyncStore) -> Result<Vec<T>, Error> {
        store.driver.scan(&self.inner.filter, self.inner.page()).await
    }
    /// [`Scan::count`] on the async store.
    #[cfg(feature = "tokio")]
    pub async fn count_async(&self, store: &AsyncStore) -> Result<u64, Error> {
        store.driver.scan_count(&self.inner.filter).await
    }
    /// The SQL this scan runs.
    pub fn sql(&self, dialect: Dialect) -> String {
        self.inner.sql(dialect)
    }
    /// The plan (a scan reads no cache).
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
    pub(crate) filter: Option<Filter<'a, T>>,
    pub(crate) compiled: &'static Compiled,
    pub(crate) params: BoundParams,
    _out: PhantomData<fn() -> O>,
}

/// Builds a `View` (called by `view!`). `predicate` is `None` for a whole-table view.
pub fn view<'a, T: Model, O: AggregateOutput>(
    compiled: &'static Compiled,
    params: Vec<Value>,
    predicate: Option<crate::prepared::ClosurePredicate<'a, T>>,
) -> View<'a, T, O> {
    let filter = predicate.map(|p| Filter {
        compiled: CompiledRef::Static(compiled),
        params: BoundParams::Positional(Positional(params.clone())),
        predicate: Predicate::Closure(p),
    });
    View { filter, compiled, params: BoundParams::Positional(Positional(params)), _out: PhantomData }
}

impl<T: Model, O: AggregateOutput> View<'_, T, O> {
    pub(crate) fn aggregate(&self) -> Result<&Aggregate, Error> {
        match &self.compiled.aggregate {
            Some(Ok(agg)) => Ok(agg),
            Some(Err(e)) => Err(Error::from_query(e.clone(), &self.compiled.source)),
            None => Err(Error::Config("a view without an aggregate".into())),
        }
    }

    /// The aggregate: whole-table views on the database; filtered ones over the
    /// rows fetched through the cache (SQL's rules: NULLs skipped, no rows → `None`).
    pub fn fetch(&self, store: &Store) -> Result<O, Error> {
        let agg = self.aggregate()?;
        let params = self.params.as_params();
        let value = match &self.filter {
            None => store.driver.aggregate::<T>(agg, params)?,
            Some(filter) => aggregate_rows(&store.driver.fetch(filter, Page::ALL)?, agg, params),
        };
        Ok(O::from_aggregate(value))
    }

    /// [`View::fetch`] on the async store.
    #[cfg(feature = "tokio")]
    pub async fn fetch_async(&self, store: &AsyncStore) -> Result<O, Error> {
        let agg = self.aggregate()?;
        let params = self.params.as_params();
        let value = match &self.filter {
            None => store.driver.aggregate::<T>(agg, params).await?,
            Some(filter) => aggregate_rows(&store.driver.fetch(filter, Page::ALL).await?, agg, params),
        };
        Ok(O::from_aggregate(value))
    }

    /// The SQL of the aggregate as the database would run it.
    pub fn sql(&self, dialect: Dialect) -> String {
        let filter = self.compiled.prepared.as_ref().ok().and_then(|p| p.filter.as_ref());
        match &self.compiled.aggregate {
            Some(Ok(agg)) => match sql::aggregate(dialect, T::schema(), filter, agg, self.params.as_params()) {
                Ok(q) => q.text,
                Err(e) => format!("-- cannot emit SQL: {e}"),
            },
            _ => "-- no aggregate".into(),
        }
    }
}

impl<T: Model, O> fmt::Debug for View<'_, T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View").field("query", &self.compiled.source).finish()
    }
}
