//! What this process last wrote to each row's indexed columns: the first guard of a
//! one-statement move or delete on PostgreSQL ([`super::write::Attempts`]).
//!
//! Such a write must know the nodes its row was in before the statement runs (its
//! outbox entry, written by the same statement, names them), so it is guarded by
//! what the row's indexed columns are believed to hold. Without a belief it reads
//! the row first (a delete), or assumes the row stays where it is (an update), and a
//! move then pays a statement that changes nothing. With the values this process
//! wrote last, a row that only this process writes moves or goes in ONE statement.
//! (A row it read since is believed to hold what the near cache kept of it, which
//! the write looks at first: `NearCache::latest`.)
//!
//! A belief is never trusted: the statement changes nothing unless the indexed
//! columns still hold these values, and then its reply says what they do hold, for
//! the next attempt. A stale entry (another process wrote the row since) costs one
//! statement that changes nothing, never a wrong node; a missing one (evicted, or
//! never written here) costs what the write cost without this module.

use std::sync::Arc;

use memdex_grammar::{Schema, Value};
use quick_cache::sync::Cache;

use crate::near::ObjectId;
use crate::statements::SchemaId;

/// How many rows' values are kept: a bound on memory (each entry holds the key and
/// the indexed values of one row), not a cache whose misses cost much — a miss is
/// one statement more on a write.
const ROWS: usize = 4096;

/// The indexed values this process last wrote, per row (by model schema and id).
pub(crate) struct LastWritten {
    rows: Cache<(SchemaId, ObjectId), Arc<[Value]>>,
}

impl std::fmt::Debug for LastWritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastWritten").field("rows", &self.rows.len()).finish()
    }
}

impl Default for LastWritten {
    fn default() -> LastWritten {
        LastWritten { rows: Cache::new(ROWS) }
    }
}

impl LastWritten {
    /// The row this process last wrote with this id, in schema column order: its
    /// key and its indexed columns as written, every other column `Null`.
    pub(crate) fn get(&self, schema: &'static Schema, id: &ObjectId) -> Option<Arc<[Value]>> {
        self.rows.get(&(SchemaId::of(schema), id.clone()))
    }

    /// This process committed `row` (every column, in schema column order).
    pub(crate) fn wrote(&self, schema: &'static Schema, id: ObjectId, row: &[Value]) {
        if row.len() != schema.columns.len() {
            return;
        }
        let kept = (0..row.len()).map(|c| if names_nodes(schema, c) { row[c].clone() } else { Value::Null });
        self.rows.insert((SchemaId::of(schema), id), kept.collect());
    }

    /// This process deleted the row with this id.
    pub(crate) fn deleted(&self, schema: &'static Schema, id: &ObjectId) {
        self.rows.remove(&(SchemaId::of(schema), id.clone()));
    }
}

/// Whether column `c` is the key or names one of the row's index nodes: what a
/// guard compares.
fn names_nodes(schema: &Schema, c: usize) -> bool {
    c == schema.key || schema.indexes.iter().any(|ix| ix.columns.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> &'static Schema {
        use memdex_grammar::Type;
        let schema = Schema::new("Item", "item")
            .column("id", Type::Int, false)
            .column("category_id", Type::Int, false)
            .column("name", Type::Text, false)
            .key("id")
            .index(&["category_id"], None);
        Box::leak(Box::new(schema))
    }

    #[test]
    fn keeps_the_key_and_the_indexed_values_of_the_last_write_only() {
        let (schema, last) = (schema(), LastWritten::default());
        let row = |category: i64, name: &str| vec![Value::Int(1), Value::Int(category), Value::from(name)];
        assert!(last.get(schema, &ObjectId::Int(1)).is_none());
        last.wrote(schema, ObjectId::Int(1), &row(5, "a"));
        last.wrote(schema, ObjectId::Int(1), &row(6, "b"));
        let kept = last.get(schema, &ObjectId::Int(1)).expect("written");
        assert_eq!(&kept[..], &[Value::Int(1), Value::Int(6), Value::Null]);
        assert!(last.get(schema, &ObjectId::Int(2)).is_none(), "another row");
        last.deleted(schema, &ObjectId::Int(1));
        assert!(last.get(schema, &ObjectId::Int(1)).is_none());
        last.wrote(schema, ObjectId::Int(3), &[Value::Int(3)]);
        assert!(last.get(schema, &ObjectId::Int(3)).is_none(), "a row of another shape is not kept");
    }
}
