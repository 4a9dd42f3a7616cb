//! Prepared queries: the compiled form a macro call site or a text query keeps
//! (checked, normalised and planned IR), the parameters bound to it, the in-memory
//! predicate, and the store's cache of prepared text queries. Below the engine: the
//! engine reads these; the public query types (`crate::query`) are built on them.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use memdex_grammar::ir::Lambda;
use memdex_grammar::{Access, Aggregate, Errors, ParamType, Positional, Prepared, Schema, Value};

use crate::error::Error;
use crate::model::Model;

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

/// The user's closure, boxed.
pub(crate) type ClosurePredicate<'a, T> = Box<dyn Fn(&T) -> bool + Send + Sync + 'a>;

/// The in-memory predicate: the user's closure (macro form) or the IR interpreter
/// (text form).
pub(crate) enum Predicate<'a, T> {
    Closure(ClosurePredicate<'a, T>),
    /// The filter's fields and parameters, resolved at the first row and kept for
    /// every row after it (the query's parameters are fixed).
    Interpreted(std::sync::OnceLock<memdex_grammar::eval::Resolved>),
}

/// The parameters of a query: positional (macro form) or named (text form).
#[derive(Clone, Debug)]
pub(crate) enum BoundParams {
    Positional(Positional),
    Named(Vec<(String, Value)>),
}

impl BoundParams {
    pub(crate) fn as_params(&self) -> &(dyn memdex_grammar::Params + Sync) {
        match self {
            BoundParams::Positional(p) => p,
            BoundParams::Named(n) => n,
        }
    }
}

/// Where a query's compiled form lives: a call site's static, or shared with the
/// store's cache of prepared text queries (text form).
#[derive(Debug)]
pub(crate) enum CompiledRef {
    Static(&'static Compiled),
    Shared(Arc<Compiled>),
}

impl std::ops::Deref for CompiledRef {
    type Target = Compiled;
    fn deref(&self) -> &Compiled {
        match self {
            CompiledRef::Static(c) => c,
            CompiledRef::Shared(c) => c,
        }
    }
}

/// A filter with its parameters and its in-memory predicate: what the engine runs.
pub(crate) struct Filter<'a, T> {
    pub(crate) compiled: CompiledRef,
    pub(crate) params: BoundParams,
    pub(crate) predicate: Predicate<'a, T>,
}

impl<T: Model> Filter<'_, T> {
    /// The prepared form, or the error preparing it found (surfaced at run time, never
    /// as a panic).
    pub(crate) fn prepared(&self) -> Result<&Prepared, Error> {
        self.compiled.prepared.as_ref().map_err(|e| Error::from_query(e.clone(), &self.compiled.source))
    }

    /// Whether `row` matches: the user's closure (macro form) or the IR interpreter
    /// (text form). Every path runs it last, so no path returns a row it rejects.
    pub(crate) fn matches(&self, row: &T) -> bool {
        match &self.predicate {
            Predicate::Closure(f) => f(row),
            Predicate::Interpreted(resolved) => match &self.compiled.prepared {
                Ok(Prepared { filter: Some(filter), .. }) => {
                    let (schema, params) = (self.compiled.schema, self.params.as_params());
                    let resolved = resolved.get_or_init(|| memdex_grammar::eval::Resolved::new(schema, filter, params));
                    memdex_grammar::eval::matches_resolved(schema, filter, resolved, &|c| row.column_value(c), params)
                }
                Ok(Prepared { filter: None, .. }) => true,
                Err(_) => false,
            },
        }
    }
}

/// The store's cache of prepared text queries (`Store::select_text`): parsing,
/// checking, normalising and planning a text costs tens of microseconds, and
/// programs send the same few texts again and again with other values.
///
/// A preparation is a deterministic function of the model's schema, the text, the
/// access kind, the disjunct limit and the *types* the checker is told for the
/// parameters it asks about (`ParamType`: scalar type, `None`, list and its element
/// type, missing) — never of the values themselves. So an entry records exactly the
/// parameters its preparation asked about and the type each had, and serves a later
/// call whose parameters have those same types: `c.cat in ids` prepared with a list
/// of ints is not reused for a scalar `ids`, nor `c.d == d` prepared with `d = None`
/// (planned as `IS NULL`) for an integer `d`. Parameters the text never mentions do
/// not matter.
///
/// Errors are not cached: a text that fails to prepare is a mistake the program
/// fixes, not a query it repeats on its hot path, and keeping failures would let
/// them push out plans that are used.
///
/// Least recently used entries go first once `capacity` is reached. Eviction scans
/// every entry (the capacity is a few hundred at most), which happens only on a
/// miss, next to a preparation that costs far more. The lock is never held while
/// preparing: two threads missing the same text at once both prepare it, and the
/// second keeps the first one's entry.
#[derive(Debug)]
pub(crate) struct TextCache {
    capacity: usize,
    state: Mutex<TextCacheState>,
}

#[derive(Debug, Default)]
struct TextCacheState {
    /// Entries by text; several per text when the model or parameter types differ.
    by_text: HashMap<String, Vec<TextEntry>>,
    len: usize,
    /// Advances on every use, for least-recently-used eviction.
    clock: u64,
}

#[derive(Debug)]
struct TextEntry {
    model: TypeId,
    access: Access,
    disjunct_limit: usize,
    /// Every parameter the preparation asked about, with the type it was told.
    params: Box<[(String, ParamType)]>,
    compiled: Arc<Compiled>,
    last_used: u64,
}

impl TextEntry {
    fn serves(&self, model: TypeId, access: Access, disjunct_limit: usize, types: &dyn Fn(&str) -> ParamType) -> bool {
        self.model == model
            && self.access == access
            && self.disjunct_limit == disjunct_limit
            && self.params.iter().all(|(name, ty)| types(name) == *ty)
    }
}

/// What a text query is prepared for, besides its text and parameter types.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TextQuery<'s> {
    pub(crate) model: TypeId,
    pub(crate) schema: &'static Schema,
    pub(crate) text: &'s str,
    pub(crate) access: Access,
    pub(crate) disjunct_limit: usize,
}

/// Whether a text query was found prepared, for the store's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    Hit,
    Miss,
}

impl TextCache {
    /// A cache of at most `capacity` prepared queries; 0 turns it off.
    pub(crate) fn new(capacity: usize) -> TextCache {
        TextCache { capacity, state: Mutex::new(TextCacheState::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TextCacheState> {
        // Every update below leaves the map consistent before it can panic (it does
        // not call out), so a poisoned lock still guards a usable cache.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The prepared query for `q` with parameters of these `types`, from the cache
    /// or prepared now (and kept when it prepared without error).
    pub(crate) fn get_or_prepare(
        &self,
        q: TextQuery<'_>,
        types: &dyn Fn(&str) -> ParamType,
    ) -> (Result<Arc<Compiled>, Errors>, Lookup) {
        if self.capacity > 0 {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            if let Some(entry) = state
                .by_text
                .get_mut(q.text)
                .and_then(|entries| entries.iter_mut().find(|e| e.serves(q.model, q.access, q.disjunct_limit, types)))
            {
                entry.last_used = now;
                return (Ok(entry.compiled.clone()), Lookup::Hit);
            }
        }

        // Prepared outside the lock, recording what the checker asks about.
        let asked: RefCell<Vec<(String, ParamType)>> = RefCell::new(Vec::new());
        let recording = |name: &str| {
            let ty = types(name);
            let mut asked = asked.borrow_mut();
            if !asked.iter().any(|(n, _)| n == name) {
                asked.push((name.to_owned(), ty));
            }
            ty
        };
        let prepared = memdex_grammar::prepare_text(q.schema, q.text, &recording, q.access, q.disjunct_limit);
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => return (Err(e), Lookup::Miss),
        };
        let compiled =
            Arc::new(Compiled { schema: q.schema, prepared: Ok(prepared), aggregate: None, source: q.text.to_owned() });
        if self.capacity == 0 {
            return (Ok(compiled), Lookup::Miss);
        }

        let params = asked.into_inner().into_boxed_slice();
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        let entries = state.by_text.entry(q.text.to_owned()).or_default();
        // Another thread may have prepared the same query meanwhile: keep one.
        if let Some(existing) = entries.iter_mut().find(|e| {
            e.model == q.model && e.access == q.access && e.disjunct_limit == q.disjunct_limit && e.params == params
        }) {
            existing.last_used = now;
            return (Ok(existing.compiled.clone()), Lookup::Miss);
        }
        entries.push(TextEntry {
            model: q.model,
            access: q.access,
            disjunct_limit: q.disjunct_limit,
            params,
            compiled: compiled.clone(),
            last_used: now,
        });
        state.len += 1;
        while state.len > self.capacity {
            state.evict_least_recently_used();
        }
        (Ok(compiled), Lookup::Miss)
    }
}

impl TextCacheState {
    fn evict_least_recently_used(&mut self) {
        let oldest = self
            .by_text
            .iter()
            .flat_map(|(text, entries)| entries.iter().enumerate().map(move |(i, e)| (e.last_used, text, i)))
            .min_by_key(|(used, _, _)| *used)
            .map(|(_, text, i)| (text.clone(), i));
        let Some((text, i)) = oldest else {
            // Nothing left to evict: `len` and the map disagree, so trust the map.
            self.len = 0;
            return;
        };
        if let Some(entries) = self.by_text.get_mut(&text) {
            entries.swap_remove(i);
            if entries.is_empty() {
                self.by_text.remove(&text);
            }
        }
        self.len -= 1;
    }
}
