//! The texts of the write path's statements, rendered once per shape.
//!
//! A write renders its row statement, its outbox entry and its registry lookup
//! through the sqlparser AST. Their texts depend on the dialect and a small shape
//! (the model's schema, the number of keys) and never on the values, which are all
//! placeholders (`grammar/tests/sql.rs`,
//! `write_statement_texts_depend_on_their_shape_alone`). Building and rendering them
//! was the largest part of the client's own work in a one-row PostgreSQL update
//! (`perf record` of a loop of updates: the statements' ASTs, `sql::finish` and the
//! drops, ~30 % of the client's samples), so each text is rendered the first time its
//! shape is written and then only the values are bound. Measured pinned, the same
//! loop before and after, alternating, three runs: the client's CPU per update
//! 191 / 154 / 140 µs before, 119 / 100 / 83 µs after; the update's median
//! 411 / 340 / 289 µs before, 294 / 240 / 192 µs after.
//!
//! The first rendering of a shape is also the check: its text is kept only when the
//! values it bound are exactly those the shape's `*_params` function lists, so a
//! statement whose binding order ever drifted from its function would be rendered
//! every time rather than run with values in the wrong places.

use std::collections::HashMap;
use std::sync::RwLock;

use memdex_grammar::sql::SqlQuery;
use memdex_grammar::{Dialect, Schema, Value};

/// What a statement's text depends on besides the dialect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shape {
    /// `sql::insert` of a model's row.
    Insert(SchemaId),
    /// `sql::update_returning_old` of a model's row: absent where the dialect
    /// cannot return the old row.
    UpdateReturningOld(SchemaId),
    /// `sql::update` of a model's row, where it cannot.
    Update(SchemaId),
    /// `sql::row_for_update` of a model's row.
    RowForUpdate(SchemaId),
    /// `sql::rows_by_keys` of one key: a model's row as it is, unlocked.
    RowByKey(SchemaId),
    /// An outbox entry (`sql::insert` into the outbox).
    OutboxInsert,
    /// The registry lookup of these tables.
    RegistryLookup(Vec<String>),
    /// An outbox entry, the clean-up of this many applied ones, and the registry
    /// lookup of these tables in one statement.
    OutboxEntryAndLookup(usize, Vec<String>),
    /// `sql::guarded_write_with_entry` of a model's row with the clean-up of this
    /// many applied entries: absent where the dialect cannot.
    GuardedWrite(SchemaId, GuardedChange, usize),
}

/// The row change of a [`Shape::GuardedWrite`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum GuardedChange {
    Update,
    Insert,
    Delete,
    /// An update that reads the row as it was (`sql::RowChange::UpdateReading`).
    UpdateReading,
    /// A delete that returns the row as it was (`sql::RowChange::DeleteReading`).
    DeleteReading,
}

/// A model's schema by address: models' schemas are statics, so two models never
/// share one (two versions of a model on one table have a schema each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SchemaId(usize);

impl SchemaId {
    pub(crate) fn of(schema: &'static Schema) -> SchemaId {
        SchemaId(std::ptr::from_ref(schema) as usize)
    }
}

/// Beyond this many shapes (many table combinations in the transactions, many
/// applied entries cleaned up at once), statements are rendered every time.
const MAX_SHAPES: usize = 1024;

/// What is known of a shape once it has been rendered.
#[derive(Debug)]
enum Kept {
    /// Its text, to bind the next values to.
    Text(Box<str>),
    /// The dialect has no such statement (`sql::update_returning_old` on MySQL).
    Absent,
    /// Its first rendering bound other values than its parameter function listed:
    /// rendered every time.
    Render,
}

/// [`Kept`], its text copied out of the lock.
enum Found {
    Text(String),
    Absent,
    Render,
}

/// The kept texts, by dialect and shape.
#[derive(Debug, Default)]
pub(crate) struct StatementTexts {
    texts: RwLock<HashMap<(Dialect, Shape), Kept>>,
}

impl StatementTexts {
    /// The statement of `shape` with `params`: the kept text when there is one;
    /// otherwise `render`'s statement, whose text is kept when it bound `params`.
    pub(crate) fn query(
        &self,
        dialect: Dialect,
        shape: Shape,
        params: Vec<Value>,
        render: impl FnOnce() -> SqlQuery,
    ) -> SqlQuery {
        let key = (dialect, shape);
        if let Some(Found::Text(text)) = self.find(&key) {
            return SqlQuery { text, params };
        }
        let rendered = render();
        self.keep(key, Some(&rendered), &params);
        rendered
    }

    /// [`StatementTexts::query`] for a statement the dialect may not have: `render`
    /// answers `None` there, and so does every later call.
    pub(crate) fn optional_query(
        &self,
        dialect: Dialect,
        shape: Shape,
        params: Vec<Value>,
        render: impl FnOnce() -> Option<SqlQuery>,
    ) -> Option<SqlQuery> {
        let key = (dialect, shape);
        match self.find(&key) {
            Some(Found::Text(text)) => return Some(SqlQuery { text, params }),
            Some(Found::Absent) => return None,
            Some(Found::Render) | None => {}
        }
        let rendered = render();
        self.keep(key, rendered.as_ref(), &params);
        rendered
    }

    /// What is kept of a shape, `None` for one not rendered yet.
    fn find(&self, key: &(Dialect, Shape)) -> Option<Found> {
        let texts = self.texts.read().unwrap_or_else(|p| p.into_inner());
        texts.get(key).map(|kept| match kept {
            Kept::Text(text) => Found::Text(text.to_string()),
            Kept::Absent => Found::Absent,
            Kept::Render => Found::Render,
        })
    }

    fn keep(&self, key: (Dialect, Shape), rendered: Option<&SqlQuery>, params: &[Value]) {
        let kept = match rendered {
            None => Kept::Absent,
            Some(q) if q.params == params => Kept::Text(q.text.as_str().into()),
            Some(q) => {
                // Expected for a list of over 100 values, which some dialects bind
                // as one (`sql` binds long lists so); for anything else a statement's
                // `*_params` function has drifted from it, which the grammar's tests
                // catch. The values themselves stay out of the log: they are the
                // user's rows.
                tracing::debug!(
                    target: "memdex",
                    shape = ?key,
                    bound = q.params.len(),
                    listed = params.len(),
                    "a statement bound other values than its shape lists: it is rendered every time"
                );
                Kept::Render
            }
        };
        let mut texts = self.texts.write().unwrap_or_else(|p| p.into_inner());
        if texts.len() < MAX_SHAPES {
            texts.insert(key, kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(text: &str, params: Vec<Value>) -> SqlQuery {
        SqlQuery { text: text.to_owned(), params }
    }

    #[test]
    fn a_shape_is_rendered_once_and_then_bound() {
        let texts = StatementTexts::default();
        let mut renders = 0;
        for v in 1..=3 {
            let q = texts.query(Dialect::Postgres, Shape::OutboxInsert, vec![Value::Int(v)], || {
                renders += 1;
                rendered("INSERT $1", vec![Value::Int(v)])
            });
            assert_eq!((q.text.as_str(), q.params), ("INSERT $1", vec![Value::Int(v)]));
        }
        assert_eq!(renders, 1);
        // Another dialect is another text.
        let q = texts.query(Dialect::Sqlite, Shape::OutboxInsert, vec![Value::Int(4)], || {
            rendered("INSERT ?", vec![Value::Int(4)])
        });
        assert_eq!(q.text, "INSERT ?");
    }

    #[test]
    fn a_shape_whose_values_disagree_is_rendered_every_time() {
        let texts = StatementTexts::default();
        let mut renders = 0;
        for v in 1..=3 {
            let q = texts.query(Dialect::Postgres, Shape::OutboxInsert, vec![Value::Int(v), Value::Int(0)], || {
                renders += 1;
                rendered("INSERT $1, $2", vec![Value::Int(0), Value::Int(v)])
            });
            assert_eq!(q.params, vec![Value::Int(0), Value::Int(v)], "the rendered values, not the listed ones");
        }
        assert_eq!(renders, 3);
    }

    #[test]
    fn a_statement_the_dialect_lacks_stays_absent() {
        let texts = StatementTexts::default();
        let mut renders = 0;
        for _ in 0..2 {
            let q =
                texts.optional_query(Dialect::MySql, Shape::OutboxEntryAndLookup(1, Vec::new()), Vec::new(), || {
                    renders += 1;
                    None
                });
            assert!(q.is_none());
        }
        assert_eq!(renders, 1);
        // One the dialect has is kept as a text.
        for v in 1..=2 {
            let q = texts.optional_query(
                Dialect::Postgres,
                Shape::OutboxEntryAndLookup(1, Vec::new()),
                vec![Value::Int(v)],
                || {
                    renders += 1;
                    Some(rendered("WITH $1", vec![Value::Int(v)]))
                },
            );
            assert_eq!(q.map(|q| (q.text, q.params)), Some(("WITH $1".to_owned(), vec![Value::Int(v)])));
        }
        assert_eq!(renders, 2);
    }
}
