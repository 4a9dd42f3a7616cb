//! Queries the database answers alone: `scan!`, its count, whole-table views; and
//! the pure steps around them (paging in memory, aggregating fetched rows).

use memdex_grammar::ir::AggFunc;
use memdex_grammar::relax;
use memdex_grammar::sql::{self, OrderBy, SelectSpec, SqlQuery};
use memdex_grammar::{Aggregate, Type, Value};

use super::fetch::superset_query;
use super::{Env, Label, Machine, Replies, SqlReply, SqlRequest, Step, column_types, decode_rows, sort_by_key};
use crate::db::DbError;
use crate::error::Error;
use crate::model::Model;
use crate::prepared::Filter;

/// What a [`OneQuery`] makes of its statement's rows.
pub(crate) trait Finish<O>: FnOnce(Vec<Vec<Value>>) -> Result<O, Error> {}

impl<O, F: FnOnce(Vec<Vec<Value>>) -> Result<O, Error>> Finish<O> for F {}

/// One statement and what to make of its rows.
pub(crate) struct OneQuery<O, F> {
    label: Label,
    query: SqlQuery,
    types: Vec<Type>,
    finish: Option<F>,
    result: Option<Result<O, Error>>,
}

impl<O, F: FnOnce(Vec<Vec<Value>>) -> Result<O, Error>> OneQuery<O, F> {
    pub(crate) fn new(label: Label, query: SqlQuery, types: Vec<Type>, finish: F) -> OneQuery<O, F> {
        OneQuery { label, query, types, finish: Some(finish), result: None }
    }
}

impl<O, F: FnOnce(Vec<Vec<Value>>) -> Result<O, Error>> Machine for OneQuery<O, F> {
    type Output = O;

    fn label(&self) -> Label {
        self.label
    }

    fn poll(&mut self) -> Step<'_> {
        match self.result {
            None => Step::Sql(SqlRequest::Query { query: &self.query, types: &self.types }),
            Some(_) => Step::Done,
        }
    }

    fn handle_cache(&mut self, _: Replies) {}

    fn handle_sql(&mut self, reply: Result<SqlReply, DbError>) {
        let finish = self.finish.take();
        self.result = Some(match (reply, finish) {
            (Ok(reply), Some(finish)) => finish(reply.into_rows()),
            (Err(e), _) => Err(Error::from(e)),
            (Ok(_), None) => Err(Error::Internal("a statement answered twice".into())),
        });
    }

    fn finish(self) -> Result<O, Error> {
        self.result.unwrap_or_else(|| Err(Error::Internal("a statement finished without an answer".into())))
    }
}

fn label<T: Model>(op: &'static str) -> Label {
    Label { op, model: &T::schema().model }
}

/// How a query pages its rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Page<'p> {
    pub(crate) order: &'p [OrderBy],
    pub(crate) limit: Option<u64>,
    pub(crate) offset: u64,
    /// Keyset paging: every column value of the last row seen; the page holds only
    /// rows after it in `order` (then key) order.
    pub(crate) after: Option<&'p [Value]>,
}

impl Page<'_> {
    /// Every row, ordered by key.
    pub(crate) const ALL: Page<'static> = Page { order: &[], limit: None, offset: 0, after: None };
}

/// `scan!`: the query on the database. When the filter's SQL is exact (no
/// arithmetic, no NaN), ordering, `LIMIT` and `OFFSET` run in SQL, as written.
/// Otherwise the database selects a superset (`relax::superset`), the in-memory
/// predicate decides, and ordering and paging follow in memory, so that no page is
/// cut from rows SQL would have dropped.
pub(crate) fn scan_rows<'f, T: Model>(
    env: Env<'_>,
    filter: &'f Filter<'f, T>,
    page: Page<'f>,
) -> Result<OneQuery<Vec<T>, impl Finish<Vec<T>> + 'f>, Error> {
    let prepared = filter.prepared()?;
    let params = filter.params.as_params();
    let exact = prepared.filter.as_ref().is_none_or(|f| relax::superset(f, params).exact);
    let query = if exact {
        let spec = SelectSpec {
            filter: prepared.filter.as_ref(),
            order: page.order,
            limit: page.limit,
            offset: (page.offset > 0).then_some(page.offset),
        };
        sql::select(env.dialect, T::schema(), spec, params).map_err(|e| Error::Param(e.to_string()))?
    } else {
        superset_query::<T>(env, filter, prepared)?
    };
    Ok(OneQuery::new(label::<T>("scan"), query, column_types::<T>(), move |rows| {
        // The SQL is the predicate's own when exact; the predicate still has the
        // last word, so that no path ever returns a row it rejects.
        let rows: Vec<T> = decode_rows::<T>(rows)?.into_iter().filter(|r| filter.matches(r)).collect();
        Ok(if exact { rows } else { paged(by_key(rows), page) })
    }))
}

/// `scan!(…).count()`: `COUNT(*)` in SQL when the filter's SQL is exact; otherwise
/// the superset's rows counted through the in-memory predicate.
pub(crate) fn scan_count<'f, T: Model>(
    env: Env<'_>,
    filter: &'f Filter<'f, T>,
) -> Result<OneQuery<u64, impl Finish<u64> + 'f>, Error> {
    let prepared = filter.prepared()?;
    let params = filter.params.as_params();
    let exact = prepared.filter.as_ref().is_none_or(|f| relax::superset(f, params).exact);
    let (query, types) = if exact {
        let q = sql::count(env.dialect, T::schema(), prepared.filter.as_ref(), params)
            .map_err(|e| Error::Param(e.to_string()))?;
        (q, vec![Type::Int])
    } else {
        (superset_query::<T>(env, filter, prepared)?, column_types::<T>())
    };
    Ok(OneQuery::new(label::<T>("scan_count"), query, types, move |rows| {
        if !exact {
            return Ok(decode_rows::<T>(rows)?.into_iter().filter(|r| filter.matches(r)).count() as u64);
        }
        Ok(rows.first().and_then(|r| r.first()).and_then(Value::as_i64).map_or(0, |n| n.max(0) as u64))
    }))
}

/// A view over the whole table: the aggregate in SQL.
pub(crate) fn aggregate<T: Model>(
    env: Env<'_>,
    agg: &Aggregate,
    params: &dyn memdex_grammar::Params,
) -> Result<OneQuery<Option<f64>, impl Finish<Option<f64>>>, Error> {
    let query = sql::aggregate(env.dialect, T::schema(), None, agg, params).map_err(|e| Error::Param(e.to_string()))?;
    Ok(OneQuery::new(label::<T>("view"), query, vec![Type::Float], |rows| {
        Ok(rows.first().and_then(|r| r.first()).and_then(Value::as_f64))
    }))
}

/// A filtered view's aggregate over the rows the fetch returned, with SQL's rules:
/// NULLs skipped, no rows → `None`, count → 0.
pub(crate) fn aggregate_rows<T: Model>(
    rows: &[T],
    agg: &Aggregate,
    params: &dyn memdex_grammar::Params,
) -> Option<f64> {
    let schema = T::schema();
    let values: Vec<f64> = match &agg.arg {
        None => return Some(rows.len() as f64),
        Some(arg) => rows
            .iter()
            .filter_map(|r| memdex_grammar::eval::value(schema, arg, &|c| r.column_value(c), params).as_f64())
            .collect(),
    };
    match agg.func {
        AggFunc::Count => Some(values.len() as f64),
        _ if values.is_empty() => None,
        AggFunc::Sum => Some(values.iter().sum()),
        AggFunc::Avg => Some(values.iter().sum::<f64>() / values.len() as f64),
        AggFunc::Min => values.iter().copied().reduce(f64::min),
        AggFunc::Max => values.iter().copied().reduce(f64::max),
    }
}

fn by_key<T: Model>(mut rows: Vec<T>) -> Vec<T> {
    sort_by_key(&mut rows);
    rows
}

/// Orders (by the requested columns, then by key so that every path returns the
/// same order), drops the rows up to `after`, then skips `offset` and keeps `limit`.
pub(crate) fn paged<T: Model>(mut rows: Vec<T>, page: Page<'_>) -> Vec<T> {
    let key = T::schema().key;
    if !page.order.is_empty() {
        rows.sort_by(|a, b| page_order(page.order, key, &|c| a.column_value(c), &|c| b.column_value(c)));
    }
    if let Some(after) = page.after {
        let last = |c: usize| after.get(c).cloned().unwrap_or(Value::Null);
        rows.retain(|row| page_order(page.order, key, &|c| row.column_value(c), &last).is_gt());
    }
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let limit = page.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    rows.into_iter().skip(offset).take(limit).collect()
}

/// Two rows (their column values) in a page's order: the order columns, each
/// reversed when descending, then the key ascending.
fn page_order(
    order: &[OrderBy],
    key: usize,
    a: &dyn Fn(usize) -> Value,
    b: &dyn Fn(usize) -> Value,
) -> std::cmp::Ordering {
    for o in order {
        let ord = a(o.column).order(&b(o.column));
        let ord = if o.desc { ord.reverse() } else { ord };
        if ord.is_ne() {
            return ord;
        }
    }
    a(key).order(&b(key))
}
