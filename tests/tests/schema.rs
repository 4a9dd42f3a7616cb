//! Schema ownership on the real servers (SQLite on a file, PostgreSQL 15, MariaDB):
//! the tables made by a migration of the team's own from `memdex::ddl` and
//! `memdex::outbox_ddl`, a store that runs no DDL (`manage_schema(false)`) working
//! under an application role that has no right to run any, and drift named by
//! `check_schema`, `migrate` and `build`.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use memdex::db::Database;
use memdex::db::mysql::MySql;
use memdex::db::postgres::Postgres;
use memdex::db::sqlite::Sqlite;
use memdex::{Dialect, Error, Model, Store, StoreBuilder, select};
use memdex_tests::asynchronous::block_on;
use memdex_tests::backends::{Db, mariadb, postgres};
use memdex_tests::servers::memcached::MemcachedServer;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
#[memdex(index(cart_id, status))]
// Ordered, descending: the database's index has the order column last, DESC.
#[memdex(index(cart_id, order_by = price desc))]
pub struct Item {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index(prefix = 2))]
    pub name: String,
    pub cart_id: i64,
    pub status: String,
    // Optional and indexed: on PostgreSQL a hash index and its partial `IS NULL`
    // companion, so the check sees an expression index and a partial one.
    #[memdex(index)]
    pub note: Option<String>,
    pub price: f64,
}

/// A model whose table no migration created.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "tag")]
pub struct Tag {
    #[memdex(key)]
    pub name: String,
    pub weight: i64,
}

fn item(id: i64, cart_id: i64, status: &str) -> Item {
    Item { id, name: format!("item {id}"), cart_id, status: status.into(), note: None, price: 1.5 }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn unique(tag: &str) -> String {
    format!("{tag}_{}_{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed))
}

/// A fresh, empty database: a connection of its owner (who may run DDL), and where
/// a store reaches it.
struct Fresh {
    db: Db,
    owner: Box<dyn Database>,
    name: String,
    /// The SQLite file, removed on drop.
    file: Option<PathBuf>,
}

impl Fresh {
    fn new(db: Db, tag: &str) -> Fresh {
        let name = unique(tag);
        let (owner, file): (Box<dyn Database>, _) = match db {
            Db::Sqlite => {
                let path = std::env::temp_dir().join(format!("memdex-{name}.db"));
                (Box::new(Sqlite::open(&path).unwrap()), Some(path))
            }
            Db::Postgres => (Box::new(Postgres::connect(&postgres().create_database(&name).unwrap()).unwrap()), None),
            Db::MySql => (Box::new(MySql::connect(&mariadb().create_database(&name).unwrap()).unwrap()), None),
        };
        Fresh { db, owner, name, file }
    }

    fn dialect(&self) -> Dialect {
        self.owner.dialect()
    }

    /// A builder of a store on this database, connected as its owner, with its own
    /// cache namespace.
    fn builder(&self) -> StoreBuilder {
        let builder = Store::builder().namespace(unique("ns"));
        match (self.db, &self.file) {
            (Db::Sqlite, Some(path)) => builder.sqlite(path.to_string_lossy()),
            (Db::Postgres, _) => builder.postgres(postgres().connection_string_for(&self.name)),
            (Db::MySql, _) => builder.mysql(mariadb().url_for(&self.name)),
            (Db::Sqlite, None) => unreachable!("a SQLite database here is a file"),
        }
    }

    /// The team's migration: memdex's statements, run by the owner.
    fn migrate(&self) {
        let d = self.dialect();
        let statements: Vec<String> = memdex::outbox_ddl(d).into_iter().chain(memdex::ddl::<Item>(d)).collect();
        self.owner.execute_ddl(&statements).unwrap_or_else(|e| panic!("{:?}: the migration: {e}", self.db));
    }

    fn ddl(&self, statements: &[String]) {
        self.owner.execute_ddl(statements).unwrap_or_else(|e| panic!("{:?}: {statements:?}: {e}", self.db));
    }

    fn drop_index(&self, name: &str) -> String {
        match self.db {
            Db::MySql => format!("DROP INDEX `{name}` ON `item`"),
            _ => format!("DROP INDEX \"{name}\""),
        }
    }

    fn drop_column(&self, table: &str, column: &str) -> String {
        match self.db {
            Db::MySql => format!("ALTER TABLE `{table}` DROP COLUMN `{column}`"),
            _ => format!("ALTER TABLE \"{table}\" DROP COLUMN \"{column}\""),
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// The table and problems of a `SchemaDrift`, or a panic naming what came instead.
fn drift<T: std::fmt::Debug>(db: Db, result: Result<T, Error>) -> (String, Vec<String>) {
    match result {
        Err(Error::SchemaDrift { table, problems }) => (table, problems),
        other => panic!("{db:?}: expected a schema drift, got {other:?}"),
    }
}

/// The prefix index on `name`: a hash index on PostgreSQL.
fn name_index(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "item_name_prefix2_hash_idx",
        _ => "item_name_prefix2_idx",
    }
}

#[test]
fn ddl_is_what_a_checking_store_expects_and_drift_is_named() {
    for db in Db::ALL {
        let fresh = Fresh::new(db, "drift");
        fresh.migrate();
        let store = fresh.builder().manage_schema(false).build().unwrap_or_else(|e| panic!("{db:?}: {e}"));
        store.check_schema::<Item>().unwrap_or_else(|e| panic!("{db:?}: the migrated table drifts: {e}"));
        store.migrate::<Item>().unwrap_or_else(|e| panic!("{db:?}: migrate checks, and finds it: {e}"));

        let d = fresh.dialect();
        fresh.ddl(&[
            fresh.drop_index("item_cart_id_status_idx"),
            fresh.drop_index(name_index(d)),
            fresh.drop_index("item_cart_id_price_desc_idx"),
            fresh.drop_column("item", "price"),
        ]);
        let (table, problems) = drift(db, store.check_schema::<Item>());
        assert_eq!(table, "item");
        assert_eq!(
            problems,
            [
                "column `price` is missing".to_owned(),
                "index `item_cart_id_status_idx` on (`cart_id`, `status`) is missing".to_owned(),
                "index `item_cart_id_price_desc_idx` on (`cart_id`, `price`) is missing".to_owned(),
                format!("index `{}` on (`name`) is missing", name_index(d)),
            ],
            "{db:?}"
        );
        let message = store.check_schema::<Item>().unwrap_err().to_string();
        assert!(
            message.starts_with("table `item` is not as memdex expects it: column `price` is missing; "),
            "{message}"
        );

        // `migrate` on a store that does not manage its schema reports the same
        // drift, and creates nothing: the drift is still there afterwards.
        assert_eq!(drift(db, store.migrate::<Item>()).1, problems, "{db:?}");
        assert_eq!(drift(db, store.check_schema::<Item>()).1, problems, "{db:?}");
        assert_eq!(drift(db, store.check_schema::<Tag>()), ("tag".into(), vec!["the table does not exist".into()]));
    }
}

#[test]
fn the_async_store_checks_alike() {
    for db in Db::ALL {
        let fresh = Fresh::new(db, "drift_async");
        fresh.migrate();
        fresh.ddl(&[fresh.drop_index("item_cart_id_status_idx")]);
        let problems = block_on(async {
            let store = fresh.builder().manage_schema(false).build_async().await.unwrap();
            let drifted = store.check_schema::<Item>().await;
            assert_eq!(drift(db, store.migrate::<Item>().await).1, drift(db, store.check_schema::<Item>().await).1);
            drifted
        });
        assert_eq!(
            drift(db, problems).1,
            ["index `item_cart_id_status_idx` on (`cart_id`, `status`) is missing"],
            "{db:?}"
        );
    }
}

#[test]
fn without_the_outbox_table_a_store_that_runs_no_ddl_does_not_build() {
    for db in Db::ALL {
        let fresh = Fresh::new(db, "no_outbox");
        let missing = ("memdex_outbox".to_owned(), vec!["the table does not exist".to_owned()]);
        assert_eq!(drift(db, fresh.builder().manage_schema(false).build()), missing, "{db:?}");
        assert_eq!(drift(db, block_on(fresh.builder().manage_schema(false).build_async())), missing, "{db:?}");
        let message = fresh.builder().manage_schema(false).build().unwrap_err().to_string();
        assert!(message.contains("memdex_outbox") && message.contains("memdex::outbox_ddl"), "{message}");

        // An outbox without the column a write fills in is as unusable.
        fresh.ddl(&memdex::outbox_ddl(fresh.dialect()));
        fresh.ddl(&[fresh.drop_column("memdex_outbox", "moved")]);
        let (table, problems) = drift(db, fresh.builder().manage_schema(false).build());
        assert_eq!(
            (table.as_str(), problems.as_slice()),
            ("memdex_outbox", &["column `moved` is missing".to_owned()][..])
        );
        // A store that manages its schema repairs it, and then the other builds.
        fresh.builder().build().unwrap_or_else(|e| panic!("{db:?}: {e}"));
        fresh.builder().manage_schema(false).build().unwrap_or_else(|e| panic!("{db:?}: {e}"));
    }
}

/// Reads and writes through every path a store takes, on a store connected as an
/// application role that may not run DDL.
fn reads_and_writes(db: Db, store: &Store) {
    store.check_schema::<Item>().unwrap_or_else(|e| panic!("{db:?}: {e}"));
    store.migrate::<Item>().unwrap_or_else(|e| panic!("{db:?}: migrate only checks: {e}"));
    for id in 1..=4 {
        store.insert(&item(id, 10 + id % 2, "open")).unwrap_or_else(|e| panic!("{db:?}: insert: {e}"));
    }
    let cart = 11;
    let open = || select!(Item, |i| i.cart_id == cart && i.status == "open").fetch(store).unwrap();
    let ids = |rows: Vec<Item>| rows.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(open()), [1, 3], "{db:?}: cold");
    assert_eq!(ids(open()), [1, 3], "{db:?}: from the cache");
    store.update(&item(3, cart, "paid")).unwrap_or_else(|e| panic!("{db:?}: update: {e}"));
    store.delete::<Item>(&1).unwrap_or_else(|e| panic!("{db:?}: delete: {e}"));
    assert_eq!(ids(open()), Vec::<i64>::new(), "{db:?}: after the writes");
    store
        .transaction(|tx| {
            tx.insert(&item(5, cart, "open"))?;
            tx.update(&item(3, cart, "open"))
        })
        .unwrap_or_else(|e| panic!("{db:?}: transaction: {e}"));
    assert_eq!(ids(open()), [3, 5], "{db:?}: after the transaction");
    store.drain_outbox().unwrap_or_else(|e| panic!("{db:?}: drain: {e}"));
}

#[test]
fn an_app_role_without_ddl_rights_reads_and_writes_on_postgres() {
    let memcached = MemcachedServer::start().unwrap();
    let fresh = Fresh::new(Db::Postgres, "role");
    let role = unique("app");
    // PostgreSQL 15 no longer lets PUBLIC create in `public`; said again so the
    // test does not depend on it.
    fresh.ddl(&[format!("CREATE ROLE \"{role}\" LOGIN"), "REVOKE CREATE ON SCHEMA public FROM PUBLIC".into()]);
    fresh.migrate();
    fresh.ddl(&[
        format!("GRANT USAGE ON SCHEMA public TO \"{role}\""),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{role}\""),
    ]);
    let as_app = || {
        Store::builder()
            .namespace(unique("ns"))
            .postgres(postgres().connection_string_as(&role, &fresh.name))
            .memcached([memcached.addr()])
    };
    // The problem `manage_schema(false)` solves: a store that manages its schema
    // runs `CREATE TABLE IF NOT EXISTS`, which this role may not, though the table
    // is there.
    let refused = as_app().build().unwrap_err().to_string();
    assert!(refused.contains("permission denied"), "{refused}");

    let store = as_app().manage_schema(false).build().unwrap_or_else(|e| panic!("{e}"));
    reads_and_writes(Db::Postgres, &store);
    assert!(store.stats().cache_round_trips > 0, "memcached was used");

    // The async store, on tokio-postgres, alike.
    block_on(async {
        let store = as_app().manage_schema(false).build_async().await.unwrap_or_else(|e| panic!("{e}"));
        store.check_schema::<Item>().await.unwrap();
        store.insert(&item(9, 99, "open")).await.unwrap();
        let rows = select!(Item, |i| i.cart_id == 99 && i.status == "open").fetch_async(&store).await.unwrap();
        assert_eq!(rows, [item(9, 99, "open")]);
        store.delete::<Item>(&9).await.unwrap();
    });
}

#[test]
fn an_app_user_without_ddl_rights_reads_and_writes_on_mariadb() {
    let memcached = MemcachedServer::start().unwrap();
    let fresh = Fresh::new(Db::MySql, "role");
    let user = unique("app");
    let password = unique("pw");
    fresh.migrate();
    fresh.ddl(&[
        format!("CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'"),
        // LOCK TABLES is no DDL right: `migrate` registers the model's indexes under
        // `LOCK TABLES`, which MariaDB grants separately.
        format!("GRANT SELECT, INSERT, UPDATE, DELETE, LOCK TABLES ON `{}`.* TO '{user}'@'127.0.0.1'", fresh.name),
    ]);
    let as_app = || {
        Store::builder()
            .namespace(unique("ns"))
            .mysql(mariadb().url_as(&user, &password, &fresh.name))
            .memcached([memcached.addr()])
    };
    let refused = as_app().build().unwrap_err().to_string();
    assert!(refused.contains("denied"), "{refused}");
    let store = as_app().manage_schema(false).build().unwrap_or_else(|e| panic!("{e}"));
    reads_and_writes(Db::MySql, &store);
}
