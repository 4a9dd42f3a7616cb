//! A table's shape read back from the database's catalog, and how it differs from
//! what [`create_table`](super::create_table) would have made of a schema.
//!
//! Each dialect says its catalog queries (`SqlDialect::columns_query` and
//! `SqlDialect::indexes_query`): SQLite's `pragma_table_info`/`pragma_index_list`/
//! `pragma_index_info`, PostgreSQL's `pg_attribute`/`pg_index`, MySQL's
//! `information_schema`. The table's name is their one bound parameter. Their text
//! is fixed per dialect and goes through sqlparser like every other statement (it
//! is parsed and printed), so what the database runs is what the AST says.

use std::fmt;

use sqlparser::dialect::{Dialect as ParserDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use super::ddl::{IndexSpec, index_specs};
use super::{Dialect, SqlError, SqlQuery};
use crate::schema::Schema;
use crate::value::{Type, Value};

/// The types of a [`columns_query`] row: the column's name.
pub const COLUMN_ROW: &[Type] = &[Type::Text];

/// The types of an [`indexes_query`] row: the index's name, the key part's column
/// (NULL for an expression), and 1 for a partial index.
pub const INDEX_ROW: &[Type] = &[Type::Text, Type::Text, Type::Int];

/// The columns of `table`, one row ([`COLUMN_ROW`]) per column; no row when there
/// is no such table.
///
/// # Errors
///
/// [`SqlError::Unsupported`] if the dialect's catalog query does not parse (a bug
/// of memdex's, which its tests rule out).
pub fn columns_query(d: Dialect, table: &str) -> Result<SqlQuery, SqlError> {
    catalog_query(d, &d.imp().columns_query(), table)
}

/// The indexes of `table`, one row ([`INDEX_ROW`]) per key part, by index and
/// position.
///
/// # Errors
///
/// As [`columns_query`].
pub fn indexes_query(d: Dialect, table: &str) -> Result<SqlQuery, SqlError> {
    catalog_query(d, &d.imp().indexes_query(), table)
}

fn catalog_query(d: Dialect, text: &str, table: &str) -> Result<SqlQuery, SqlError> {
    let parser: &dyn ParserDialect = match d {
        Dialect::Sqlite => &SQLiteDialect {},
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::MySql => &MySqlDialect {},
    };
    let statements = Parser::parse_sql(parser, text)
        .map_err(|e| SqlError::Unsupported(format!("memdex's catalog query does not parse: {e}")))?;
    let [statement] = statements.as_slice() else {
        return Err(SqlError::Unsupported("memdex's catalog query is not one statement".into()));
    };
    Ok(SqlQuery { text: statement.to_string(), params: vec![Value::Text(table.to_owned())] })
}

/// One index as the catalog shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundIndex {
    /// Its name.
    pub name: String,
    /// Its key parts in order: a column's name, or `None` for an expression.
    pub columns: Vec<Option<String>>,
    /// Whether it covers only some rows.
    pub partial: bool,
}

/// A table as the catalog shows it: no columns means no table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableShape {
    /// Its columns' names, in order.
    pub columns: Vec<String>,
    /// Its indexes (the primary key's included, where the catalog lists it).
    pub indexes: Vec<FoundIndex>,
}

impl TableShape {
    /// The shape the rows of a [`columns_query`] and an [`indexes_query`] describe.
    /// A row of another shape is skipped: it can describe nothing memdex looks for.
    pub fn from_rows(columns: &[Vec<Value>], indexes: &[Vec<Value>]) -> TableShape {
        let columns = columns
            .iter()
            .filter_map(|row| match row.first() {
                Some(Value::Text(name)) => Some(name.clone()),
                _ => None,
            })
            .collect();
        let mut found: Vec<FoundIndex> = Vec::new();
        for row in indexes {
            let [Value::Text(name), column, partial] = row.as_slice() else { continue };
            let column = match column {
                Value::Text(c) => Some(c.clone()),
                _ => None,
            };
            let partial = matches!(partial, Value::Int(n) if *n != 0) || matches!(partial, Value::Bool(true));
            // Rows come ordered by index, so an index's parts are consecutive.
            match found.last_mut() {
                Some(last) if last.name == *name => last.columns.push(column),
                _ => found.push(FoundIndex { name: name.clone(), columns: vec![column], partial }),
            }
        }
        TableShape { columns, indexes: found }
    }

    /// Whether the table exists (a table has at least one column).
    pub fn exists(&self) -> bool {
        !self.columns.is_empty()
    }
}

/// One way a table differs from what memdex expects of it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Drift {
    /// There is no such table.
    MissingTable,
    /// The table has no column of this (SQL) name.
    MissingColumn(String),
    /// No index of the table has this name, nor these columns in this order.
    MissingIndex {
        /// The name memdex gives it.
        name: String,
        /// Its columns' SQL names, in order.
        columns: Vec<String>,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::MissingTable => f.write_str("the table does not exist"),
            Drift::MissingColumn(name) => write!(f, "column `{name}` is missing"),
            Drift::MissingIndex { name, columns } => {
                let columns: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
                write!(f, "index `{name}` on ({}) is missing", columns.join(", "))
            }
        }
    }
}

/// How `found` differs from the table [`create_table`](super::create_table) makes
/// for `schema`: a missing table, then each missing column, then each missing index.
/// An index counts as there when one of the table's indexes has its name, or (for
/// an index over every row) has exactly its columns in its order, so that an index
/// a team's migration named otherwise still counts. Column types are not compared:
/// databases spell the same type many ways, and a value of the wrong type is already
/// a decode error naming the column.
pub fn drift(d: Dialect, schema: &Schema, found: &TableShape) -> Vec<Drift> {
    if !found.exists() {
        return vec![Drift::MissingTable];
    }
    let dialect = d.imp();
    let same = |a: &str, b: &str| if dialect.identifiers_ignore_case() { a.eq_ignore_ascii_case(b) } else { a == b };
    let mut problems: Vec<Drift> = schema
        .columns
        .iter()
        .filter(|c| !found.columns.iter().any(|f| same(f, &c.name)))
        .map(|c| Drift::MissingColumn(c.name.clone()))
        .collect();
    for spec in index_specs(d, schema) {
        if !found.indexes.iter().any(|ix| serves(ix, &spec, &same)) {
            problems.push(Drift::MissingIndex { name: spec.name, columns: spec.columns });
        }
    }
    problems
}

/// Whether `found` is the index `spec` describes: the same name, or, for an index
/// over every row, the same columns in the same order.
fn serves(found: &FoundIndex, spec: &IndexSpec, same: &dyn Fn(&str, &str) -> bool) -> bool {
    if same(&found.name, &spec.name) {
        return true;
    }
    !found.partial
        && !spec.partial
        && found.columns.len() == spec.columns.len()
        && found.columns.iter().zip(&spec.columns).all(|(f, s)| f.as_deref().is_some_and(|f| same(f, s)))
}

#[cfg(test)]
#[allow(clippy::panic)] // a test fails by panicking
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new("Item", "item")
            .column("id", Type::Int, false)
            .column("name", Type::Text, false)
            .column("cart_id", Type::Int, false)
            .column("status", Type::Text, false)
            .column("note", Type::Text, true)
            .key("id")
            .index(&["name"], Some(3))
            .index(&["cart_id", "status"], None)
            .index(&["note"], None)
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn column_rows(names: &[&str]) -> Vec<Vec<Value>> {
        names.iter().map(|n| vec![text(n)]).collect()
    }

    /// Index rows from `(index, column or "" for an expression, partial)`.
    fn index_rows(parts: &[(&str, &str, bool)]) -> Vec<Vec<Value>> {
        parts
            .iter()
            .map(|(ix, col, partial)| {
                let col = if col.is_empty() { Value::Null } else { text(col) };
                vec![text(ix), col, Value::Int(i64::from(*partial))]
            })
            .collect()
    }

    fn problems(d: Dialect, columns: &[&str], indexes: &[(&str, &str, bool)]) -> Vec<String> {
        let found = TableShape::from_rows(&column_rows(columns), &index_rows(indexes));
        drift(d, &schema(), &found).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_dialect_catalog_query_parses_and_binds_the_table() {
        for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            for q in [columns_query(d, "item"), indexes_query(d, "item")] {
                let q = q.unwrap_or_else(|e| panic!("{d:?}: {e}"));
                assert_eq!(q.params, vec![text("item")], "{d:?}: {}", q.text);
                assert!(!q.text.contains("item"), "{d:?}: the table is bound, never spliced: {}", q.text);
            }
        }
    }

    #[test]
    fn a_table_as_created_has_no_drift() {
        let all = ["id", "name", "cart_id", "status", "note"];
        // SQLite: the prefix index is on an expression; names match.
        let sqlite = [
            ("item_cart_id_status_idx", "cart_id", false),
            ("item_cart_id_status_idx", "status", false),
            ("item_name_prefix3_idx", "", false),
            ("item_note_idx", "note", false),
        ];
        assert_eq!(problems(Dialect::Sqlite, &all, &sqlite), Vec::<String>::new());
        // PostgreSQL: hash indexes and the partial companion of the optional one.
        let pg = [
            ("item_pkey", "id", false),
            ("item_cart_id_status_idx", "cart_id", false),
            ("item_cart_id_status_idx", "status", false),
            ("item_name_prefix3_hash_idx", "", false),
            ("item_note_hash_idx", "note", false),
            ("item_note_null_idx", "id", true),
        ];
        assert_eq!(problems(Dialect::Postgres, &all, &pg), Vec::<String>::new());
    }

    #[test]
    fn drift_names_the_table_columns_and_indexes() {
        assert_eq!(problems(Dialect::Sqlite, &[], &[]), vec!["the table does not exist"]);
        let got = problems(Dialect::Postgres, &["id", "name", "cart_id", "status"], &[("item_pkey", "id", false)]);
        assert_eq!(
            got,
            vec![
                "column `note` is missing",
                "index `item_name_prefix3_hash_idx` on (`name`) is missing",
                "index `item_cart_id_status_idx` on (`cart_id`, `status`) is missing",
                "index `item_note_hash_idx` on (`note`) is missing",
                "index `item_note_null_idx` on (`id`) is missing",
            ]
        );
    }

    #[test]
    fn an_index_named_otherwise_counts_by_its_columns_unless_partial() {
        let all = ["ID", "Name", "cart_id", "status", "note"];
        let indexes = [
            ("by_cart", "CART_ID", false),
            ("by_cart", "status", false),
            ("item_name_prefix3_idx", "name", false),
            // On the right column but partial: not the index memdex wants.
            ("some_notes", "note", true),
        ];
        assert_eq!(
            problems(Dialect::MySql, &all, &indexes),
            vec!["index `item_note_idx` on (`note`) is missing"],
            "MySQL compares column and index names ignoring case"
        );
        // Columns in another order are another index.
        let swapped = [("by_cart", "status", false), ("by_cart", "cart_id", false)];
        let got = problems(Dialect::Sqlite, &["id", "name", "cart_id", "status", "note"], &swapped);
        assert!(got.contains(&"index `item_cart_id_status_idx` on (`cart_id`, `status`) is missing".to_owned()));
        // PostgreSQL compares names exactly (memdex quotes them).
        let got = problems(Dialect::Postgres, &["ID", "name", "cart_id", "status", "note"], &[]);
        assert_eq!(got.first().map(String::as_str), Some("column `id` is missing"));
    }
}
