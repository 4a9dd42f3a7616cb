//! The statements memdex's tables are made of, for a team that owns its schema: put
//! them into its own migrations (sqlx, refinery, plain SQL files), build the store
//! with [`StoreBuilder::manage_schema(false)`](crate::StoreBuilder::manage_schema),
//! and the application's database role needs no DDL rights at all.

use memdex_grammar::Dialect;
use memdex_grammar::sql;

use crate::capture;
use crate::model::Model;
use crate::outbox;
use crate::registry;

/// The `CREATE TABLE` and `CREATE INDEX` statements of `T`'s table in `dialect`:
/// exactly what [`Store::migrate::<T>()`](crate::Store::migrate) runs on a store
/// that manages its schema, and what [`Store::check_schema`](crate::Store::check_schema)
/// expects to find. One statement per string, without a trailing `;`.
///
/// The table is `CREATE TABLE IF NOT EXISTS` and, on SQLite and PostgreSQL, each
/// index `CREATE INDEX IF NOT EXISTS`; MySQL has no `IF NOT EXISTS` for indexes, so
/// there the index statements fail when run twice (a migration runs once). Index
/// names say what the index is (`item_cart_id_status_idx`, `item_name_prefix2_idx`),
/// so a changed index declaration yields a new statement rather than a clash.
///
/// ```
/// use memdex::{Dialect, Model};
///
/// #[derive(Model, Clone, Debug, serde::Serialize, serde::Deserialize)]
/// #[memdex(table = "item")]
/// struct Item {
///     #[memdex(key)]
///     id: i64,
///     #[memdex(index)]
///     cart_id: i64,
///     name: String,
/// }
///
/// let statements = memdex::ddl::<Item>(Dialect::Postgres);
/// assert_eq!(
///     statements,
///     [
///         r#"CREATE TABLE IF NOT EXISTS "item" ("id" BIGINT NOT NULL PRIMARY KEY, "cart_id" BIGINT NOT NULL, "name" TEXT NOT NULL)"#,
///         r#"CREATE INDEX IF NOT EXISTS "item_cart_id_idx" ON "item"("cart_id")"#,
///     ]
/// );
/// ```
pub fn ddl<T: Model>(dialect: Dialect) -> Vec<String> {
    sql::create_table(dialect, T::schema())
}

/// The statements that create memdex's outbox table (`memdex_outbox`, where every
/// write records the cache keys it invalidates, in the write's own transaction) and
/// its index, and memdex's index registry (`memdex_indexes`, where `migrate` records
/// the indexes each model declares, so that every version of a model running in a
/// rolling deploy keeps the other versions' index nodes right), in `dialect`. A
/// store that manages its schema runs them when it is built; one built with
/// `manage_schema(false)` instead checks that the tables and their columns are there
/// and fails to build otherwise. Run them once per database,
/// whatever the number of models.
///
/// An outbox table an older memdex created lacks the nullable `moved` column; a
/// managing store adds it in place, and a store that does not manage its schema
/// names it as missing (`ALTER TABLE memdex_outbox ADD COLUMN moved TEXT`, with
/// `COLLATE utf8mb4_nopad_bin` on MySQL, adds it).
///
/// The statements applied by a migration of your own, then a store that runs no
/// DDL:
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use memdex::{Dialect, Model, Store};
///
/// #[derive(Model, Clone, Debug, serde::Serialize, serde::Deserialize)]
/// #[memdex(table = "item")]
/// struct Item {
///     #[memdex(key)]
///     id: i64,
///     #[memdex(index)]
///     cart_id: i64,
/// }
///
/// let path = std::env::temp_dir().join(format!("memdex-ddl-doc-{}.db", std::process::id()));
/// let migration = rusqlite::Connection::open(&path)?;
/// for statement in memdex::outbox_ddl(Dialect::Sqlite).iter().chain(&memdex::ddl::<Item>(Dialect::Sqlite)) {
///     migration.execute_batch(statement)?;
/// }
///
/// let store = Store::builder().sqlite(path.to_string_lossy()).manage_schema(false).build()?;
/// store.check_schema::<Item>()?;
/// store.insert(&Item { id: 1, cart_id: 7 })?;
/// # drop(store);
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
pub fn outbox_ddl(dialect: Dialect) -> Vec<String> {
    let mut statements = outbox::create_statements(dialect);
    statements.extend(registry::create_statements(dialect));
    statements
}

/// The statements that capture the writes made to `T`'s table outside memdex
/// ([`StoreBuilder::capture_outside_writes`](crate::StoreBuilder::capture_outside_writes)):
/// the table of captured changes (`memdex_changes`) if missing, and the triggers
/// that fill it, replacing this version's earlier ones. A store that manages its
/// schema runs them in `migrate` when it captures; with `manage_schema(false)` run
/// them in one transaction of your own migration (on PostgreSQL and SQLite; MySQL
/// commits each on its own). They need the right to create triggers (and, on
/// PostgreSQL, functions).
pub fn capture_ddl<T: Model>(dialect: Dialect) -> Vec<String> {
    let mut statements = capture::create_statements(dialect);
    statements.extend(capture::trigger_statements(dialect, T::schema()));
    statements
}
