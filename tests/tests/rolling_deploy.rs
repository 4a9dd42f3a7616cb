//! Rolling deploys (issue 15): two versions of a model live at once, on one table,
//! one database and one memcached namespace, as they do for the minutes every rolling
//! deploy takes. Here both versions run in one process as two structs on the same
//! table (`#[memdex(table = "item")]`), each with a `Store` of its own; the stores
//! share the database (SQLite in a file, PostgreSQL, MariaDB) and one real memcached
//! under one namespace, exactly as two deployed builds would.
//!
//! What is established, for each shape and in both directions (one version writes,
//! the other reads), cold and hot:
//!
//! * a version adds a nullable column (at the end of the struct, and in the middle);
//! * a version drops a column the other still has (the table keeps it);
//! * a version renames fields and maps them to the old columns
//!   (`#[memdex(column = "…")]`), and declares them in another order;
//! * a version adds an index on an existing column the other does not declare: the
//!   reads through it are right after the *other* version wrote, cold and hot, because
//!   `migrate` records the index in memdex's index registry and every writer appends
//!   to the nodes of the registered indexes on columns it has; the registration waits
//!   for writes in flight on PostgreSQL and MariaDB
//!   (`a_registration_waits_for_a_write_in_flight`); adding the index in two deploys
//!   (declared first, queried once the old build is gone) is right too.
//!
//! The writer moves item 3 from category 5 to 6, renames item 1, inserts item 5 and
//! deletes item 2; the reader's answers (every field, not only ids) are compared with
//! the table as the test knows it. "Hot" warms both versions' nodes, objects and near
//! caches before the writes, in both orders (the reader last: the shared entries hold
//! the reader's encodings; the writer last: they hold the writer's, which the reader
//! must never decode as its own).
//!
//! The shape tag is load-bearing, as tried by making `codec::decode_object` ignore it:
//! the shapes whose encodings postcard confuses (a field added or dropped before
//! another, fields reordered) then give wrong rows here in every direction and
//! warmth, while "a column added at the end" does not (v1 reads v2's bytes as the
//! right v1, v2 cannot parse v1's) — there `versions_never_decode_each_others_bytes`
//! catches it, on the bytes memcached holds.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheOp, CacheReply};
use memdex::db::Database;
use memdex::db::mysql::MySql;
use memdex::db::postgres::Postgres;
use memdex::db::sqlite::Sqlite;
use memdex::grammar::Type;
use memdex::grammar::keys::KeySpace;
use memdex::grammar::plan::NodeRef;
use memdex::grammar::sql::SqlQuery;
use memdex::{Error, Model, Store, Value, select};
use memdex_tests::backends::{Db, mariadb, postgres};
use memdex_tests::servers::mariadb::MariaDbServer;
use memdex_tests::servers::memcached::MemcachedServer;
use memdex_tests::servers::postgres::PostgresServer;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the table

/// A row as the table holds it: every column either version knows. `extra` is the
/// column only one of the two versions maps (`note` when the new version adds it,
/// `retired` when the new version drops it; unused when both map the same columns).
#[derive(Clone, Debug, PartialEq)]
struct Row {
    id: i64,
    category_id: i64,
    label: String,
    extra: Option<String>,
}

fn row(id: i64, category_id: i64, label: &str, extra: Option<&str>) -> Row {
    Row { id, category_id, label: label.into(), extra: extra.map(Into::into) }
}

/// Labels long enough that one version's encoding, read with the other's field
/// layout, still parses (postcard reads a length and that many bytes): a mix-up shows
/// as wrong values rather than as a decode error that happens to be harmless.
fn seed_rows() -> Vec<Row> {
    vec![
        row(1, 5, "the first item's label", Some("note of item one")),
        row(2, 5, "the second item's label", Some("note of item two")),
        row(3, 5, "the third item's label", None),
        row(4, 6, "the fourth item's label", Some("note of item four")),
    ]
}

/// Every label a scenario ever gives a row (the reads through a label index ask for
/// each, so that the nodes of labels rows move *into* are warm too).
const LABELS: [&str; 8] = [
    "the first item's label",
    "the second item's label",
    "the third item's label",
    "the fourth item's label",
    "item one, renamed by the writer",
    "the fifth item, inserted by the writer",
    "item four, renamed after the old version is gone",
    "item three, renamed by the version that queries labels",
];

/// Every note a scenario ever gives a row (the reads through an index on
/// `(category_id, note)` ask for each, in both categories).
const NOTES: [Option<&str>; 8] = [
    None,
    Some("note of item one"),
    Some("note of item two"),
    Some("note of item four"),
    Some("moved by the writer"),
    Some("renamed by the writer"),
    Some("inserted by the writer"),
    Some("the fifth item's note"),
];

// ---------------------------------------------------------------- the versions

/// One version of the model, as a deployed build declares it.
trait Version: Model<Key = i64> + Debug + PartialEq {
    /// "v1" or "v2" (with the shape), for messages.
    const NAME: &'static str;
    /// Whether this version maps the column only one version has.
    const KNOWS_EXTRA: bool;
    /// The row as this version reads it.
    fn from_row(row: &Row) -> Self;
    fn in_category(store: &Store, category: i64) -> Result<Vec<Self>, Error>;
    fn by_id(store: &Store, id: i64) -> Result<Vec<Self>, Error>;
    /// Through the index on `label`, for a version that declares one.
    fn by_label(_store: &Store, _label: &str) -> Option<Result<Vec<Self>, Error>> {
        None
    }
    /// Through the index on `(category_id, note)`, for a version that declares one.
    fn by_category_and_note(_store: &Store, _category: i64, _note: Option<&str>) -> Option<Result<Vec<Self>, Error>> {
        None
    }
}

/// The queries every version has: through the shared index on category, and by key.
macro_rules! shared_queries {
    ($model:ident, $category:ident) => {
        fn in_category(store: &Store, category: i64) -> Result<Vec<Self>, Error> {
            select!($model, |i| i.$category == category).fetch(store)
        }
        fn by_id(store: &Store, id: i64) -> Result<Vec<Self>, Error> {
            select!($model, |i| i.id == id).fetch(store)
        }
    };
}

/// v2 adds a nullable column `note` after the others (`ALTER TABLE … ADD COLUMN`
/// first, then v2 is deployed).
pub mod added_at_end {
    use super::*;

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    pub struct ItemV1 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        pub label: String,
    }

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    pub struct ItemV2 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        pub label: String,
        pub note: Option<String>,
    }

    impl Version for ItemV1 {
        const NAME: &'static str = "v1 (id, category_id, label)";
        const KNOWS_EXTRA: bool = false;
        fn from_row(r: &Row) -> Self {
            ItemV1 { id: r.id, category_id: r.category_id, label: r.label.clone() }
        }
        shared_queries!(ItemV1, category_id);
    }

    impl Version for ItemV2 {
        const NAME: &'static str = "v2 (id, category_id, label, note)";
        const KNOWS_EXTRA: bool = true;
        fn from_row(r: &Row) -> Self {
            ItemV2 { id: r.id, category_id: r.category_id, label: r.label.clone(), note: r.extra.clone() }
        }
        shared_queries!(ItemV2, category_id);
    }
}

/// v2 adds a nullable column `note` declared before `label`: v1 reading v2's bytes
/// with its own layout would take `note`'s `None` byte for an empty label.
pub mod added_in_middle {
    use super::*;

    pub use super::added_at_end::ItemV1;

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    pub struct ItemV2 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        pub note: Option<String>,
        pub label: String,
    }

    impl Version for ItemV2 {
        const NAME: &'static str = "v2 (id, category_id, note, label)";
        const KNOWS_EXTRA: bool = true;
        fn from_row(r: &Row) -> Self {
            ItemV2 { id: r.id, category_id: r.category_id, note: r.extra.clone(), label: r.label.clone() }
        }
        shared_queries!(ItemV2, category_id);
    }
}

/// v2 drops the nullable column `retired` that v1 maps (before `label`); the table
/// keeps it until v1 is retired.
pub mod dropped {
    use super::*;

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    pub struct ItemV1 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        pub retired: Option<String>,
        pub label: String,
    }

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    pub struct ItemV2 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        pub label: String,
    }

    impl Version for ItemV1 {
        const NAME: &'static str = "v1 (id, category_id, retired, label)";
        const KNOWS_EXTRA: bool = true;
        fn from_row(r: &Row) -> Self {
            ItemV1 { id: r.id, category_id: r.category_id, retired: r.extra.clone(), label: r.label.clone() }
        }
        shared_queries!(ItemV1, category_id);
    }

    impl Version for ItemV2 {
        const NAME: &'static str = "v2 (id, category_id, label)";
        const KNOWS_EXTRA: bool = false;
        fn from_row(r: &Row) -> Self {
            ItemV2 { id: r.id, category_id: r.category_id, label: r.label.clone() }
        }
        shared_queries!(ItemV2, category_id);
    }
}

/// v2 renames its fields and maps them to the old columns (`column = "…"`), declared
/// in another order; its index on `category` is v1's index on `category_id` (node keys
/// name the column, not the field).
pub mod remapped {
    use super::*;

    pub use super::added_at_end::ItemV1;

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    pub struct ItemV2 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(column = "label")]
        pub title: String,
        #[memdex(index, column = "category_id")]
        pub category: i64,
    }

    impl Version for ItemV2 {
        const NAME: &'static str = "v2 (id, title → label, category → category_id)";
        const KNOWS_EXTRA: bool = false;
        fn from_row(r: &Row) -> Self {
            ItemV2 { id: r.id, title: r.label.clone(), category: r.category_id }
        }
        shared_queries!(ItemV2, category);
    }
}

/// v2 declares an index on `label`, an existing column v1 does not index.
pub mod indexed {
    use super::*;

    pub use super::added_at_end::ItemV1;

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    pub struct ItemV2 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        #[memdex(index)]
        pub label: String,
    }

    /// The first of two deploys adding the index: the index is declared (so this
    /// build's writes append to its nodes) but no query runs through it (so no node
    /// of it is filled while v1, which does not append to them, still writes).
    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    pub struct ItemDeclaring {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        #[memdex(index)]
        pub label: String,
    }

    impl Version for ItemDeclaring {
        const NAME: &'static str = "v1.5 (index on label declared, not queried)";
        const KNOWS_EXTRA: bool = false;
        fn from_row(r: &Row) -> Self {
            ItemDeclaring { id: r.id, category_id: r.category_id, label: r.label.clone() }
        }
        shared_queries!(ItemDeclaring, category_id);
    }

    impl Version for ItemV2 {
        const NAME: &'static str = "v2 (id, category_id, label; index on label)";
        const KNOWS_EXTRA: bool = false;
        fn from_row(r: &Row) -> Self {
            ItemV2 { id: r.id, category_id: r.category_id, label: r.label.clone() }
        }
        shared_queries!(ItemV2, category_id);
        fn by_label(store: &Store, label: &str) -> Option<Result<Vec<Self>, Error>> {
            Some(select!(ItemV2, |i| i.label == label).fetch(store))
        }
    }
}

// ---------------------------------------------------------------- the set-up

/// A name no other store of this run uses.
fn unique(tag: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let tag: String =
        tag.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("rolling_{tag}_{}_{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed))
}

/// One database both versions use, and a connection of the test's own for the
/// migration steps a team runs with its own tools.
struct Shared {
    db: Db,
    /// The SQLite file, PostgreSQL connection string or MariaDB URL.
    target: String,
    raw: Box<dyn Database>,
    file: Option<PathBuf>,
}

impl Shared {
    fn new(db: Db, tag: &str) -> Shared {
        let name = unique(tag);
        let (target, raw, file): (String, Box<dyn Database>, _) = match db {
            Db::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.sqlite"));
                let raw = Sqlite::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                (path.to_string_lossy().into_owned(), Box::new(raw), Some(path))
            }
            Db::Postgres => {
                let params = postgres().create_database(&name).expect("create a PostgreSQL database");
                let raw = Postgres::connect(&params).expect("connect to PostgreSQL");
                (params, Box::new(raw), None)
            }
            Db::MySql => {
                let url = mariadb().create_database(&name).expect("create a MariaDB database");
                let raw = MySql::connect(&url).expect("connect to MariaDB");
                (url, Box::new(raw), None)
            }
        };
        Shared { db, target, raw, file }
    }

    /// A store on this database and `memcached` under `namespace` (the default
    /// generation, 0): what one deployed build of the service opens.
    fn store(&self, memcached: &str, namespace: &str) -> Store {
        let builder = Store::builder().namespace(namespace).memcached([memcached]);
        let builder = match self.db {
            Db::Sqlite => builder.sqlite(self.target.clone()),
            Db::Postgres => builder.postgres(self.target.clone()),
            Db::MySql => builder.mysql(self.target.clone()),
        };
        builder.build().unwrap_or_else(|e| panic!("{:?}: the store builds: {e}", self.db))
    }

    /// A store that runs no DDL (its `migrate` checks the table, then registers the
    /// model's indexes).
    fn store_not_managing(&self, memcached: &str, namespace: &str) -> Store {
        let builder = Store::builder().namespace(namespace).memcached([memcached]).manage_schema(false);
        let builder = match self.db {
            Db::Sqlite => builder.sqlite(self.target.clone()),
            Db::Postgres => builder.postgres(self.target.clone()),
            Db::MySql => builder.mysql(self.target.clone()),
        };
        builder.build().unwrap_or_else(|e| panic!("{:?}: the store builds: {e}", self.db))
    }

    fn ddl(&self, statement: &str) {
        self.raw.execute_ddl(&[statement.to_owned()]).unwrap_or_else(|e| panic!("{:?}: `{statement}`: {e}", self.db));
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut name = path.clone().into_os_string();
                name.push(suffix);
                // Absent is fine (only some journal files exist).
                let _ = std::fs::remove_file(name);
            }
        }
    }
}

/// The table as it is once the team's migration for this shape has run: created by
/// v1's `migrate`, then (for an added column) the `ALTER TABLE` a team runs with its
/// own migration tool *before* deploying v2 — memdex's `migrate` creates missing
/// tables and indexes, never columns — then v2's `migrate` (its indexes).
type Migrate = fn(&Shared, &Store, &Store);

fn migrate_both<V1: Version, V2: Version>(_: &Shared, v1: &Store, v2: &Store) {
    v1.migrate::<V1>().expect("v1 migrates");
    v2.migrate::<V2>().expect("v2 migrates");
}

fn migrate_adding_note<V1: Version, V2: Version>(shared: &Shared, v1: &Store, v2: &Store) {
    v1.migrate::<V1>().expect("v1 migrates");
    // Before the column exists, v2's schema check says so: a build can refuse to
    // start ahead of its migration.
    match v2.check_schema::<V2>() {
        Err(Error::SchemaDrift { problems, .. }) if problems.iter().any(|p| p.contains("`note`")) => {}
        other => panic!("{:?}: v2's check before the migration: expected `note` missing, got {other:?}", shared.db),
    }
    shared.ddl("ALTER TABLE item ADD COLUMN note TEXT");
    v2.check_schema::<V2>().unwrap_or_else(|e| panic!("{:?}: v2's check after the migration: {e}", shared.db));
    v2.migrate::<V2>().expect("v2 migrates");
}

/// The column added by the team's migration, then v2's `migrate`, which creates the
/// index on it (and registers it); v2's check passes only after that.
fn migrate_adding_indexed_note<V1: Version, V2: Version>(shared: &Shared, v1: &Store, v2: &Store) {
    v1.migrate::<V1>().expect("v1 migrates");
    shared.ddl("ALTER TABLE item ADD COLUMN note TEXT");
    v2.migrate::<V2>().expect("v2 migrates");
    v2.check_schema::<V2>().unwrap_or_else(|e| panic!("{:?}: v2's check after its migrate: {e}", shared.db));
}

// ---------------------------------------------------------------- one scenario

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Warm {
    /// Nothing cached before the writes.
    Cold,
    /// The writer reads everything, then the reader: the shared nodes and objects
    /// end up as the reader fills them, and its near cache holds the rows.
    ReaderLast,
    /// The reader reads everything, then the writer: the reader's near cache holds
    /// the rows, while the shared nodes and objects end up as the writer fills them.
    WriterLast,
}

const ALL_WARM: [Warm; 3] = [Warm::Cold, Warm::ReaderLast, Warm::WriterLast];
const HOT: [Warm; 2] = [Warm::ReaderLast, Warm::WriterLast];

/// What one scenario runs: the shape's versions, which one writes, how warm.
struct Scenario<'a> {
    shape: &'a str,
    shared: &'a Shared,
    memcached: &'a str,
    warm: Warm,
    /// Which of [`the_writes`] the writer makes.
    writes: Writes,
}

/// Which of [`the_writes`] a scenario's writer makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writes {
    All,
    /// All but the delete.
    NoDelete,
}

fn insert_as<V: Version>(store: &Store, r: &Row) -> Result<(), Error> {
    store.insert(&V::from_row(r))
}

/// Which reads come first. A read that meets the other version's bytes (with the
/// shape check broken) can go wrong in two ways: a key lookup serves the misread row,
/// while an index read may drop it on its own filter and ask the database, repairing
/// the object for the reads after it. Each order is used, so both ways are tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    KeysFirst,
    IndexesFirst,
}

/// Every read `V` has, compared field by field with the table as the test knows it.
fn check<V: Version>(store: &Store, table: &BTreeMap<i64, Row>, order: Order, when: &str, problems: &mut Vec<String>) {
    let mut compare = |what: String, got: Result<Vec<V>, Error>, want: Vec<V>| match got {
        Ok(got) if got == want => {}
        Ok(got) => problems.push(format!("{when}: {} {what}:\n      got  {got:?}\n      want {want:?}", V::NAME)),
        Err(e) => problems.push(format!("{when}: {} {what}: error {e}", V::NAME)),
    };
    let keys_first = [true, false];
    let indexes_first = [false, true];
    for keys in if order == Order::KeysFirst { keys_first } else { indexes_first } {
        if keys {
            for id in 1..=5 {
                let want = table.get(&id).map(V::from_row).into_iter().collect();
                compare(format!("id {id}"), V::by_id(store, id), want);
            }
            continue;
        }
        for category in [5, 6] {
            let want = table.values().filter(|r| r.category_id == category).map(V::from_row).collect();
            compare(format!("category {category}"), V::in_category(store, category), want);
        }
        for label in LABELS {
            let Some(got) = V::by_label(store, label) else { break };
            let want = table.values().filter(|r| r.label == label).map(V::from_row).collect();
            compare(format!("label {label:?}"), got, want);
        }
        for (category, note) in [5, 6].into_iter().flat_map(|c| NOTES.map(|n| (c, n))) {
            let Some(got) = V::by_category_and_note(store, category, note) else { break };
            let want = table
                .values()
                .filter(|r| r.category_id == category && r.extra.as_deref() == note)
                .map(V::from_row)
                .collect();
            compare(format!("category {category}, note {note:?}"), got, want);
        }
    }
}

/// One write, as a version's build makes it.
enum Change {
    Update(Row),
    Insert(Row),
    Delete(i64),
}

/// The writes of every scenario: item 3 moves from category 5 to 6, item 1 is
/// renamed, item 5 is inserted into category 6, item 2 is deleted.
fn the_writes() -> [Change; 4] {
    [
        Change::Update(row(3, 6, "the third item's label", Some("moved by the writer"))),
        Change::Update(row(1, 5, "item one, renamed by the writer", Some("renamed by the writer"))),
        Change::Insert(row(5, 6, "the fifth item, inserted by the writer", Some("inserted by the writer"))),
        Change::Delete(2),
    ]
}

/// `W` makes `change`, and `table` follows: `W` writes the fields it maps; the column
/// it does not map keeps its value (or is NULL in a row it inserts).
fn write_as<W: Version>(store: &Store, table: &mut BTreeMap<i64, Row>, change: Change, context: &str) {
    let written = |old: Option<&Row>, mut new: Row| {
        new.extra = if W::KNOWS_EXTRA { new.extra } else { old.and_then(|o| o.extra.clone()) };
        new
    };
    let (what, result) = match change {
        Change::Update(new) => {
            let new = written(table.get(&new.id), new);
            let result = store.update(&W::from_row(&new));
            (format!("update item {} to {new:?}", new.id), result.map(|()| table.insert(new.id, new)).map(drop))
        }
        Change::Insert(new) => {
            let new = written(None, new);
            let result = store.insert(&W::from_row(&new));
            (format!("insert {new:?}"), result.map(|()| table.insert(new.id, new)).map(drop))
        }
        Change::Delete(id) => {
            (format!("delete item {id}"), store.delete::<W>(&id).map(|()| table.remove(&id)).map(drop))
        }
    };
    result.unwrap_or_else(|e| panic!("{context}: {} {what}: {e}", W::NAME));
}

/// Seeds the table, warms as asked, lets `W` write, and checks every read of both
/// versions afterwards. Returns what went wrong (empty: the shape is right).
fn scenario<W: Version, R: Version>(s: &Scenario<'_>) -> Vec<String> {
    let context = format!("{:?}, {}: {} writes, {} reads, {:?}", s.shared.db, s.shape, W::NAME, R::NAME, s.warm);
    let mut problems = Vec::new();
    s.shared.ddl("DELETE FROM item");
    let namespace = unique("ns");
    let writer = s.shared.store(s.memcached, &namespace);
    let reader = s.shared.store(s.memcached, &namespace);

    // Seeded by a version that maps the extra column, so that its values are there to
    // be kept (or lost) by the version that does not.
    let mut table: BTreeMap<i64, Row> = seed_rows().into_iter().map(|r| (r.id, r)).collect();
    for r in table.values_mut() {
        if !(W::KNOWS_EXTRA || R::KNOWS_EXTRA) {
            r.extra = None;
        }
        let seeded =
            if W::KNOWS_EXTRA || !R::KNOWS_EXTRA { insert_as::<W>(&writer, r) } else { insert_as::<R>(&reader, r) };
        seeded.unwrap_or_else(|e| panic!("{context}: seed item {}: {e}", r.id));
    }

    match s.warm {
        Warm::Cold => {}
        Warm::ReaderLast => {
            check::<W>(&writer, &table, Order::IndexesFirst, "warming", &mut problems);
            check::<R>(&reader, &table, Order::KeysFirst, "warming", &mut problems);
        }
        Warm::WriterLast => {
            check::<R>(&reader, &table, Order::IndexesFirst, "warming", &mut problems);
            check::<W>(&writer, &table, Order::KeysFirst, "warming", &mut problems);
        }
    }

    for change in the_writes() {
        if s.writes == Writes::NoDelete && matches!(change, Change::Delete(_)) {
            continue;
        }
        write_as::<W>(&writer, &mut table, change, &context);
    }

    let after = [
        (Order::KeysFirst, "the reader's first reads after the writes"),
        (Order::IndexesFirst, "the reader's reads again (hot)"),
    ];
    let before = reader.stats();
    for (order, when) in after {
        check::<R>(&reader, &table, order, when, &mut problems);
    }
    // Hot means the reader's answers came through the shared cache, not around it.
    let reads = reader.stats();
    if s.warm != Warm::Cold && (reads.node_hits == before.node_hits || reads.degraded_calls != before.degraded_calls) {
        problems.push(format!(
            "the reader's reads after the writes did not go through the cache: {} node hits, {} degraded calls",
            reads.node_hits - before.node_hits,
            reads.degraded_calls - before.degraded_calls
        ));
    }
    check::<W>(&writer, &table, Order::IndexesFirst, "the writer's reads after the reader's", &mut problems);
    check::<R>(&reader, &table, Order::KeysFirst, "the reader's reads after the writer's", &mut problems);
    problems.into_iter().map(|p| format!("{context}\n    {p}")).collect()
}

/// Runs the scenarios of one shape: on each database, v1 writing at each warmth of
/// `v1_writes` (v2 reads), then v2 writing at each of `v2_writes` (v1 reads). Returns
/// every problem found.
fn run_shape<V1: Version, V2: Version>(
    shape: &str,
    migrate: Migrate,
    v1_writes: &[Warm],
    v2_writes: &[Warm],
) -> Vec<String> {
    run_shape_writing::<V1, V2>(shape, migrate, (v1_writes, Writes::All), v2_writes)
}

/// [`run_shape`], v1 making `v1_writes.1` of the writes.
fn run_shape_writing<V1: Version, V2: Version>(
    shape: &str,
    migrate: Migrate,
    (v1_writes, v1_makes): (&[Warm], Writes),
    v2_writes: &[Warm],
) -> Vec<String> {
    each_db(shape, |shared, memcached| {
        let namespace = unique("migrate");
        migrate(shared, &shared.store(memcached, &namespace), &shared.store(memcached, &namespace));
        let mut problems = Vec::new();
        for &warm in v1_writes {
            let s = Scenario { shape, shared, memcached, warm, writes: v1_makes };
            problems.extend(scenario::<V1, V2>(&s));
        }
        for &warm in v2_writes {
            let s = Scenario { shape, shared, memcached, warm, writes: Writes::All };
            problems.extend(scenario::<V2, V1>(&s));
        }
        problems
    })
}

/// Runs `body` on a fresh database of each kind (SQLite in a file, PostgreSQL,
/// MariaDB) with one memcached, and gathers the problems it returns.
fn each_db(tag: &str, body: impl Fn(&Shared, &str) -> Vec<String>) -> Vec<String> {
    let memcached = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    let memcached = memcached.addr();
    // Starting PostgreSQL and MariaDB is most of this test's time: both start (once
    // per test binary) while the SQLite scenarios run; a failure to start shows at
    // their first use below.
    let starting =
        [std::thread::spawn(|| drop(PostgresServer::shared())), std::thread::spawn(|| drop(MariaDbServer::shared()))];
    let mut problems = Vec::new();
    for db in Db::ALL {
        problems.extend(body(&Shared::new(db, tag), &memcached));
    }
    for thread in starting {
        thread.join().expect("the start-up thread does not panic");
    }
    problems
}

fn assert_right(shape: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{shape}: {} wrong answers across versions:\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------- the shapes

#[test]
fn a_nullable_column_added_at_the_end() {
    use added_at_end::{ItemV1, ItemV2};
    let problems = run_shape::<ItemV1, ItemV2>(
        "note added at the end",
        migrate_adding_note::<ItemV1, ItemV2>,
        &ALL_WARM,
        &ALL_WARM,
    );
    assert_right("a nullable column added at the end", problems);
}

#[test]
fn a_nullable_column_added_in_the_middle() {
    use added_in_middle::{ItemV1, ItemV2};
    let problems = run_shape::<ItemV1, ItemV2>(
        "note added before label",
        migrate_adding_note::<ItemV1, ItemV2>,
        &ALL_WARM,
        &ALL_WARM,
    );
    assert_right("a nullable column added in the middle", problems);
}

#[test]
fn a_column_dropped_by_the_new_version() {
    use dropped::{ItemV1, ItemV2};
    let problems = run_shape::<ItemV1, ItemV2>("retired dropped", migrate_both::<ItemV1, ItemV2>, &ALL_WARM, &ALL_WARM);
    assert_right("a column dropped by v2", problems);
}

#[test]
fn fields_renamed_and_mapped_to_the_old_columns() {
    use remapped::{ItemV1, ItemV2};
    let problems = run_shape::<ItemV1, ItemV2>("fields remapped", migrate_both::<ItemV1, ItemV2>, &ALL_WARM, &ALL_WARM);
    assert_right("fields mapped to other columns", problems);
}

/// v2 adds a nullable column `note` and an index on `(category_id, note)`: v1 cannot
/// spell that index's nodes from its own images (it has no `note`), so its write
/// transactions read `note` of the rows they wrote (the registry says the column's
/// type) and append to the nodes the rows are in, before and after — `note` is the
/// same in both, since v1 never writes it.
pub mod indexed_new_column {
    use super::*;

    pub use super::added_at_end::ItemV1;

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "item")]
    #[memdex(index(category_id, note))]
    pub struct ItemV2 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub category_id: i64,
        pub label: String,
        pub note: Option<String>,
    }

    impl Version for ItemV2 {
        const NAME: &'static str = "v2 (note added; index on category_id, note)";
        const KNOWS_EXTRA: bool = true;
        fn from_row(r: &Row) -> Self {
            ItemV2 { id: r.id, category_id: r.category_id, label: r.label.clone(), note: r.extra.clone() }
        }
        shared_queries!(ItemV2, category_id);
        fn by_category_and_note(store: &Store, category: i64, note: Option<&str>) -> Option<Result<Vec<Self>, Error>> {
            let note = note.map(str::to_owned);
            Some(select!(ItemV2, |i| i.category_id == category && i.note == note).fetch(store))
        }
    }
}

/// An index on a column only the new version has: v1 moves, renames and inserts
/// rows while v2's nodes of it are cold and hot (and v2 makes every write, cold and
/// hot, appending to them itself); v1 also deletes while they are cold (hot:
/// `an_index_on_a_column_only_the_new_version_has_v1_deleting_hot`).
#[test]
fn an_index_on_a_column_only_the_new_version_has() {
    use indexed_new_column::{ItemV1, ItemV2};
    let migrate = migrate_adding_indexed_note::<ItemV1, ItemV2>;
    let mut problems = run_shape_writing::<ItemV1, ItemV2>(
        "index on the new column",
        migrate,
        (&ALL_WARM, Writes::NoDelete),
        &ALL_WARM,
    );
    problems.extend(run_shape::<ItemV1, ItemV2>("index on the new column", migrate, &[Warm::Cold], &[]));
    assert_right("an index on a column only v2 has", problems);
}

/// v1 deletes a row while v2's nodes of its index on the new column are cached.
/// Once the row is gone v1's transaction cannot read its `note`, so v1 reads it with
/// the row as it was (its registry snapshot names the index): without that, v1
/// appended no deletion entry to the row's `(category_id, note)` node, and v2, which
/// keeps the row in its near cache at exactly the version that node names, served
/// it (18 wrong answers over the three databases).
#[test]
fn an_index_on_a_column_only_the_new_version_has_v1_deleting_hot() {
    use indexed_new_column::{ItemV1, ItemV2};
    let problems = run_shape::<ItemV1, ItemV2>(
        "index on the new column",
        migrate_adding_indexed_note::<ItemV1, ItemV2>,
        &HOT,
        &[],
    );
    assert_right("an index on a column only v2 has, v1 deleting, hot", problems);
}

/// The parts of "v2 adds an index v1 does not declare" that hold today: v2's writes
/// reach v1's reads (v2 appends to the nodes of every index v1 declares, since it
/// declares them too), and v1's writes reach v2's reads while v2's label nodes are
/// not cached yet (they are filled from the database). The hot case, v1 writing while
/// v2's label nodes are cached, is `an_index_only_the_new_version_declares_hot`.
#[test]
fn an_index_only_the_new_version_declares_what_holds_today() {
    use indexed::{ItemV1, ItemV2};
    let problems =
        run_shape::<ItemV1, ItemV2>("index on label", migrate_both::<ItemV1, ItemV2>, &[Warm::Cold], &ALL_WARM);
    assert_right("an index only v2 declares (v2 writes; v1 writes cold)", problems);
}

/// v1 (no index on label) renames, inserts and deletes while v2's label nodes are
/// cached: v2's reads through its label index must see every change.
#[test]
fn an_index_only_the_new_version_declares_hot() {
    use indexed::{ItemV1, ItemV2};
    let problems = run_shape::<ItemV1, ItemV2>("index on label", migrate_both::<ItemV1, ItemV2>, &HOT, &[]);
    assert_right("an index only v2 declares, v1 writing, hot", problems);
}

/// The registration's lock on PostgreSQL and MariaDB: v2's `migrate` (which records
/// v2's label index in the index registry) waits for v1's write transaction in flight
/// on the table, and v1's write reaches v2's label reads either way: the write in
/// flight did not see the registration (it had not committed), so v2's nodes are
/// filled from the database after it; the write after the registration appends to
/// v2's cached label nodes. v2's table and index exist beforehand and v2 runs no DDL
/// (`manage_schema(false)`), so the wait is the registration's own, not a `CREATE
/// INDEX`'s.
#[test]
fn a_registration_waits_for_a_write_in_flight() {
    use indexed::{ItemV1, ItemV2};
    use std::sync::mpsc;
    use std::time::Duration;

    let memcached = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    let memcached = memcached.addr();
    for db in [Db::Postgres, Db::MySql] {
        let shared = Shared::new(db, "registration waits");
        let namespace = unique("ns");
        let v1 = shared.store(&memcached, &namespace);
        v1.migrate::<ItemV1>().expect("v1 migrates");
        let dialect = match db {
            Db::Postgres => memdex::Dialect::Postgres,
            _ => memdex::Dialect::MySql,
        };
        for statement in memdex::ddl::<ItemV2>(dialect) {
            shared.ddl(&statement);
        }
        let v2 = shared.store_not_managing(&memcached, &namespace);
        v1.insert(&ItemV1 { id: 1, category_id: 5, label: "before".into() }).expect("insert");
        v1.insert(&ItemV1 { id: 2, category_id: 5, label: "other".into() }).expect("insert");

        let (started_tx, started) = mpsc::channel::<()>();
        let (release, release_rx) = mpsc::channel::<()>();
        let (migrated_tx, migrated) = mpsc::channel::<Result<(), Error>>();
        let (v1, v2) = (&v1, &v2);
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                v1.transaction(|tx| {
                    tx.update(&ItemV1 { id: 1, category_id: 5, label: "during".into() })?;
                    started_tx.send(()).ok();
                    release_rx.recv().ok();
                    Ok(())
                })
            });
            started.recv_timeout(Duration::from_secs(30)).expect("the write transaction started");
            scope.spawn(move || migrated_tx.send(v2.migrate::<ItemV2>()).ok());
            let early = migrated.recv_timeout(Duration::from_millis(700));
            // Released before any verdict, so that a failure does not leave the
            // writer (and this scope) waiting forever.
            release.send(()).ok();
            match early {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                other => panic!("{db:?}: v2's migrate returned while v1's write was in flight: {other:?}"),
            }
            writer.join().expect("the writer thread").unwrap_or_else(|e| panic!("{db:?}: v1's write: {e}"));
            migrated
                .recv_timeout(Duration::from_secs(30))
                .expect("v2's migrate returned after the write committed")
                .unwrap_or_else(|e| panic!("{db:?}: v2 migrates: {e}"));
        });

        let ids = |label: &str| -> Vec<(i64, String)> {
            let rows = ItemV2::by_label(v2, label).expect("v2 queries labels");
            rows.unwrap_or_else(|e| panic!("{db:?}: v2's read by label {label:?}: {e}"))
                .into_iter()
                .map(|r| (r.id, r.label))
                .collect()
        };
        // The write in flight: v2's nodes are filled after it committed.
        assert_eq!(ids("during"), vec![(1, "during".to_owned())], "{db:?}");
        assert_eq!(ids("before"), vec![], "{db:?}");
        assert_eq!(ids("after"), vec![], "{db:?}");
        // A write after the registration appends to v2's cached label nodes.
        v1.update(&ItemV1 { id: 1, category_id: 5, label: "after".into() }).expect("update");
        assert_eq!(ids("during"), vec![], "{db:?}: the node v1's row left");
        assert_eq!(ids("after"), vec![(1, "after".to_owned())], "{db:?}: the node v1's row joined");
        // A process of v1 that has not written since the registration (its snapshot
        // of the registry is empty) inserts a row: on PostgreSQL its one statement
        // finds v2's index registered and writes nothing, and the insert goes the
        // long way, appending to v2's cached label node.
        assert_eq!(ids("fresh"), vec![], "{db:?}");
        let fresh_v1 = shared.store(&memcached, &namespace);
        fresh_v1.insert(&ItemV1 { id: 3, category_id: 5, label: "fresh".into() }).expect("insert");
        assert_eq!(ids("fresh"), vec![(3, "fresh".to_owned())], "{db:?}: the node v1's new row joined");
        // Another fresh process of v1 deletes that row: on PostgreSQL its guarded
        // statement finds v2's index registered and deletes nothing, and the delete
        // goes the long way, reading the row's label and appending to v2's node
        // (whose rows v2 keeps: unchanged bytes would serve them again).
        let another_v1 = shared.store(&memcached, &namespace);
        another_v1.delete::<ItemV1>(&3).expect("delete");
        assert_eq!(ids("fresh"), vec![], "{db:?}: the node v1's deleted row left");
        // A third renames row 2: on PostgreSQL its guarded statement finds v2's index
        // registered and writes nothing; its reply finds the row holding the values
        // it compared (v1 indexes no label), so a second guarded statement would shut
        // too, and the update goes the long way, appending to both of v2's label
        // nodes (whose rows v2 keeps).
        assert_eq!((ids("other"), ids("renamed")), (vec![(2, "other".to_owned())], vec![]), "{db:?}");
        let third_v1 = shared.store(&memcached, &namespace);
        let before = third_v1.stats().db_queries;
        third_v1.update(&ItemV1 { id: 2, category_id: 5, label: "renamed".into() }).expect("update");
        if db == Db::Postgres {
            let statements = third_v1.stats().db_queries - before;
            // The transaction's four: the update returning the row, the registry
            // lookup with the entry, the read of v2's columns, the entry again.
            assert_eq!(statements, 5, "the guarded statement, then the transaction");
        }
        assert_eq!(ids("other"), vec![], "{db:?}: the node v1's renamed row left");
        assert_eq!(ids("renamed"), vec![(2, "renamed".to_owned())], "{db:?}: the node v1's renamed row joined");
    }
}

/// What a team can do today to add an index in a rolling deploy: deploy first a build
/// that declares the index but runs no query through it, retire the old build, and
/// only then deploy the build that queries through it. No node of the new index is
/// filled while a writer that does not know it still runs (writes never create a
/// node), and every writer after that appends to its nodes.
#[test]
fn an_index_added_in_two_deploys() {
    use indexed::{ItemDeclaring, ItemV1, ItemV2};
    let problems = each_db("two deploys", |shared, memcached| {
        let context = format!("{:?}, an index added in two deploys", shared.db);
        let mut problems = Vec::new();
        let namespace = unique("ns");
        let v1 = shared.store(memcached, &namespace);
        let declaring = shared.store(memcached, &namespace);
        migrate_both::<ItemV1, ItemDeclaring>(shared, &v1, &declaring);
        let mut table: BTreeMap<i64, Row> = BTreeMap::new();
        for mut r in seed_rows() {
            r.extra = None;
            write_as::<ItemV1>(&v1, &mut table, Change::Insert(r), &context);
        }

        // Deploy 1: v1 and v1.5 side by side, hot, each writing while the other reads.
        check::<ItemV1>(&v1, &table, Order::IndexesFirst, "deploy 1, warming", &mut problems);
        check::<ItemDeclaring>(&declaring, &table, Order::KeysFirst, "deploy 1, warming", &mut problems);
        for change in the_writes() {
            write_as::<ItemV1>(&v1, &mut table, change, &context);
        }
        check::<ItemDeclaring>(&declaring, &table, Order::KeysFirst, "deploy 1, after v1's writes", &mut problems);
        let moved = row(4, 5, "the fourth item's label", None);
        write_as::<ItemDeclaring>(&declaring, &mut table, Change::Update(moved), &context);
        check::<ItemV1>(&v1, &table, Order::KeysFirst, "deploy 1, after v1.5's write", &mut problems);

        // v1 is retired. No node of the label index exists yet.
        drop(v1);
        let raw = Memcached::connect(&[memcached.to_owned()], CacheConfig::default()).expect("connect to memcached");
        let keys = KeySpace::new(&namespace, ItemV2::schema(), 0);
        for label in LABELS {
            let node =
                keys.node(ItemV2::schema(), &NodeRef { index: Some(1), values: vec![Value::Text(label.into())] });
            match raw.run(&[CacheOp::Get { key: &node, lease: None }]).remove(0) {
                Ok(CacheReply::Miss) => {}
                other => problems.push(format!("after deploy 1, the label node {node} is cached: {other:?}")),
            }
        }

        // Deploy 2: v1.5 and v2 side by side; v2 queries through the label index.
        let v2 = shared.store(memcached, &namespace);
        check::<ItemV2>(&v2, &table, Order::IndexesFirst, "deploy 2, v2's first reads", &mut problems);
        let renamed = row(4, 5, "item four, renamed after the old version is gone", None);
        write_as::<ItemDeclaring>(&declaring, &mut table, Change::Update(renamed), &context);
        check::<ItemV2>(&v2, &table, Order::IndexesFirst, "deploy 2, after v1.5's write", &mut problems);
        let renamed = row(3, 6, "item three, renamed by the version that queries labels", None);
        write_as::<ItemV2>(&v2, &mut table, Change::Update(renamed), &context);
        write_as::<ItemV2>(&v2, &mut table, Change::Delete(1), &context);
        check::<ItemDeclaring>(&declaring, &table, Order::KeysFirst, "deploy 2, after v2's writes", &mut problems);
        check::<ItemV2>(&v2, &table, Order::KeysFirst, "deploy 2, after v2's writes", &mut problems);
        problems.into_iter().map(|p| format!("{context}\n    {p}")).collect()
    });
    assert_right("an index added in two deploys", problems);
}

// ---------------------------------------------------------------- the bytes

fn raw_get(cache: &dyn CacheBackend, key: &str) -> Vec<u8> {
    match cache.run(&[CacheOp::Get { key, lease: None }]).remove(0) {
        Ok(CacheReply::Hit { value, .. }) if !value.is_empty() => value.to_vec(),
        other => panic!("expected the object {key} cached, got {other:?}"),
    }
}

/// `bytes` with their shape tag replaced by `B`'s: what decoding them as `B` would
/// give if the tag were not checked.
fn retagged<B: Model>(bytes: &[u8]) -> Vec<u8> {
    let mut forged = bytes.to_vec();
    forged[1..5].copy_from_slice(&B::schema().schema_hash().to_le_bytes());
    forged
}

/// `A` fills item 1's object; the bytes memcached holds decode as `A` and never as
/// `B`. Then `B` reads the item (right, from the database) and repairs the object
/// with its own encoding, which `A` in turn never decodes. `confusable`: whether the
/// body of `A`'s bytes would parse as a `B` with wrong values (so only the tag keeps
/// `B` from it) — asserted, so that the test shows where the tag is load-bearing.
fn bytes_stay_with_their_shape<A: Version, B: Version>(
    shape: &str,
    migrate: Migrate,
    memcached: &str,
    a_body_confuses_b: bool,
    b_body_confuses_a: bool,
) {
    let shared = Shared::new(Db::Sqlite, "bytes");
    let namespace = unique("bytes");
    let (a, b) = (shared.store(memcached, &namespace), shared.store(memcached, &namespace));
    migrate(&shared, &a, &b);
    let raw = Memcached::connect(&[memcached.to_owned()], CacheConfig::default()).expect("connect to memcached");
    let key = KeySpace::new(&namespace, A::schema(), 0).object(&Value::Int(1));
    assert_eq!(key, KeySpace::new(&namespace, B::schema(), 0).object(&Value::Int(1)), "{shape}: one object key");
    assert_ne!(A::schema().schema_hash(), B::schema().schema_hash(), "{shape}: two shapes");

    // A writes the row, so the column only one version maps has a value only if A
    // maps it.
    let item = row(1, 5, "the first item's label", A::KNOWS_EXTRA.then_some("a note"));
    a.insert(&A::from_row(&item)).expect("insert");
    assert_eq!(A::by_id(&a, 1).expect("A reads"), vec![A::from_row(&item)], "{shape}: {} reads", A::NAME);
    let bytes = raw_get(&raw, &key);
    assert_eq!(memdex::__private::decode_object::<A>(&bytes), Some(A::from_row(&item)), "{shape}: A's bytes");
    assert_eq!(
        memdex::__private::decode_object::<B>(&bytes),
        None,
        "{shape}: {} decoded {}'s bytes as its own",
        B::NAME,
        A::NAME
    );
    if a_body_confuses_b {
        let misread = memdex::__private::decode_object::<B>(&retagged::<B>(&bytes));
        assert!(
            misread.as_ref().is_some_and(|m| *m != B::from_row(&item)),
            "{shape}: expected {}'s body to parse as a wrong {}, got {misread:?}",
            A::NAME,
            B::NAME
        );
    }

    assert_eq!(B::by_id(&b, 1).expect("B reads"), vec![B::from_row(&item)], "{shape}: {} reads", B::NAME);
    let bytes = raw_get(&raw, &key);
    assert_eq!(
        memdex::__private::decode_object::<B>(&bytes),
        Some(B::from_row(&item)),
        "{shape}: {} repaired the object with its own encoding",
        B::NAME
    );
    assert_eq!(
        memdex::__private::decode_object::<A>(&bytes),
        None,
        "{shape}: {} decoded {}'s bytes as its own",
        A::NAME,
        B::NAME
    );
    if b_body_confuses_a {
        let misread = memdex::__private::decode_object::<A>(&retagged::<A>(&bytes));
        assert!(
            misread.as_ref().is_some_and(|m| *m != A::from_row(&item)),
            "{shape}: expected {}'s body to parse as a wrong {}, got {misread:?}",
            B::NAME,
            A::NAME
        );
    }
    assert_eq!(A::by_id(&a, 1).expect("A reads again"), vec![A::from_row(&item)], "{shape}: {} again", A::NAME);
}

#[test]
fn versions_never_decode_each_others_bytes() {
    let server = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    let memcached = server.addr();
    {
        use added_at_end::{ItemV1, ItemV2};
        let migrate: Migrate = migrate_adding_note::<ItemV1, ItemV2>;
        // v2's body read as v1 stops before `note` and gives v1's fields right; v1's
        // body read as v2 ends where `note` should be: neither is a wrong value.
        bytes_stay_with_their_shape::<ItemV1, ItemV2>("note at the end", migrate, &memcached, false, false);
    }
    {
        use added_in_middle::{ItemV1, ItemV2};
        let migrate: Migrate = migrate_adding_note::<ItemV1, ItemV2>;
        // v2's body read as v1: `note`'s bytes become the label.
        bytes_stay_with_their_shape::<ItemV1, ItemV2>("note in the middle", migrate, &memcached, false, true);
    }
    {
        use dropped::{ItemV1, ItemV2};
        let migrate: Migrate = migrate_both::<ItemV1, ItemV2>;
        // v1's body read as v2: `retired`'s bytes become the label.
        bytes_stay_with_their_shape::<ItemV1, ItemV2>("retired dropped", migrate, &memcached, true, false);
    }
    {
        use remapped::{ItemV1, ItemV2};
        let migrate: Migrate = migrate_both::<ItemV1, ItemV2>;
        // Reordered fields: v1's body read as v2 takes the category for the length of
        // the title and a byte of the label for the category. (v2's body read as v1
        // runs out of bytes: a decode error, not a wrong value.)
        bytes_stay_with_their_shape::<ItemV1, ItemV2>("fields remapped", migrate, &memcached, true, false);
    }
}

/// One transaction of v1 moves two rows while v2's nodes of its index on the new
/// column are hot: the transaction reads `note` of every row it wrote (one read of
/// the table for all their keys) and appends each row to its nodes, the second
/// row as well as the first.
#[test]
fn a_transaction_moving_several_rows_reaches_the_index_on_the_new_column() {
    use indexed_new_column::{ItemV1, ItemV2};
    let memcached = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    let memcached = memcached.addr();
    for db in Db::ALL {
        let shared = Shared::new(db, "several rows");
        let namespace = unique("ns");
        let (v1, v2) = (shared.store(&memcached, &namespace), shared.store(&memcached, &namespace));
        migrate_adding_indexed_note::<ItemV1, ItemV2>(&shared, &v1, &v2);
        let note = Some("kept by v2".to_owned());
        for id in 1..=3 {
            v2.insert(&ItemV2 { id, category_id: 5, label: format!("item {id}"), note: note.clone() }).expect("insert");
        }
        let in_node = |category: i64| {
            let n = note.clone();
            let rows = select!(ItemV2, |i| i.category_id == category && i.note == n).fetch(&v2).expect("fetch");
            rows.into_iter().map(|i| i.id).collect::<Vec<i64>>()
        };
        for when in ["warm", "hot"] {
            assert_eq!(in_node(5), [1, 2, 3], "{db:?}: v2's node of category 5, {when}");
            assert_eq!(in_node(6), Vec::<i64>::new(), "{db:?}: v2's node of category 6, {when}");
        }
        v1.transaction(|tx| {
            for id in [1, 2] {
                tx.update(&ItemV1 { id, category_id: 6, label: format!("item {id}") })?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{db:?}: v1's transaction: {e}"));
        let hits = v2.stats().node_hits;
        assert_eq!(in_node(6), [1, 2], "{db:?}: the node both rows joined");
        assert_eq!(in_node(5), [3], "{db:?}: the node both rows left");
        assert_eq!(v2.stats().node_hits - hits, 2, "{db:?}: v2 read its nodes from the cache");
    }
}

/// A delete by v1 in a process that has not read the registry since v2 registered
/// its index on `(category_id, note)` (its snapshot is stale): the transaction
/// learns of the index only after its DELETE, when the row's `note` is gone, so it
/// fails with `Error::RegistryChanged` and rolls back; run again, it reads `note`
/// with the row and appends to the row's node. `Store::delete` runs it again by
/// itself. Either way v2's hot reads through that index stop returning the row.
#[test]
fn a_delete_with_a_stale_registry_snapshot_runs_again() {
    use indexed_new_column::{ItemV1, ItemV2};
    let memcached = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    let memcached = memcached.addr();
    for db in Db::ALL {
        let shared = Shared::new(db, "stale snapshot");
        let namespace = unique("ns");
        let (v1_tx, v1_delete) = (shared.store(&memcached, &namespace), shared.store(&memcached, &namespace));
        v1_tx.migrate::<ItemV1>().expect("v1 migrates");
        v1_delete.migrate::<ItemV1>().expect("v1 migrates");
        // On PostgreSQL also a v1 process on the async driver.
        let runtime = memdex_tests::asynchronous::runtime();
        let v1_async = (db == Db::Postgres).then(|| {
            let builder =
                Store::builder().postgres(shared.target.clone()).namespace(&namespace).memcached([&memcached]);
            let store = runtime.block_on(builder.build_async()).expect("an async v1");
            runtime.block_on(store.migrate::<ItemV1>()).expect("v1 migrates");
            store
        });
        for id in 1..=3 {
            v1_tx.insert(&ItemV1 { id, category_id: 5, label: format!("item {id}") }).expect("insert");
        }
        shared.ddl("ALTER TABLE item ADD COLUMN note TEXT");
        let v2 = shared.store(&memcached, &namespace);
        v2.migrate::<ItemV2>().expect("v2 migrates");
        let note = Some("kept by v2".to_owned());
        for id in 1..=3 {
            v2.update(&ItemV2 { id, category_id: 5, label: format!("item {id}"), note: note.clone() }).expect("update");
        }
        let in_node = || {
            let n = note.clone();
            let rows = select!(ItemV2, |i| i.category_id == 5 && i.note == n).fetch(&v2).expect("fetch");
            rows.into_iter().map(|i| i.id).collect::<Vec<i64>>()
        };
        assert_eq!(in_node(), [1, 2, 3], "{db:?}: v2's node, warm");
        assert_eq!(in_node(), [1, 2, 3], "{db:?}: v2's node, hot");

        match v1_tx.transaction(|tx| tx.delete::<ItemV1>(&1)) {
            Err(Error::RegistryChanged { table }) => assert_eq!(table, "item", "{db:?}"),
            other => panic!("{db:?}: a delete with a stale snapshot: {other:?}"),
        }
        assert_eq!(in_node(), [1, 2, 3], "{db:?}: the failed delete was rolled back");
        v1_tx.transaction(|tx| tx.delete::<ItemV1>(&1)).unwrap_or_else(|e| panic!("{db:?}: run again: {e}"));
        assert_eq!(in_node(), [2, 3], "{db:?}: after v1's transaction deleted item 1");
        v1_delete.delete::<ItemV1>(&2).unwrap_or_else(|e| panic!("{db:?}: Store::delete runs it again: {e}"));
        assert_eq!(in_node(), [3], "{db:?}: after v1's Store::delete of item 2");
        match v1_async {
            // Stale too: `AsyncStore::delete` runs it again by itself.
            Some(store) => runtime.block_on(store.delete::<ItemV1>(&3)).unwrap_or_else(|e| panic!("async: {e}")),
            None => v1_delete.delete::<ItemV1>(&3).expect("delete"),
        }
        assert_eq!(in_node(), Vec::<i64>::new(), "{db:?}: after the last delete");
    }
}

/// An index on a column that is later dropped stays in the registry (its row is
/// never removed by itself): a build without the column finds it missing from the
/// table's catalog and skips the index, so its inserts, updates and deletes go on
/// (a read of the dropped column would fail each of them), and its reads are right.
#[test]
fn a_registered_index_on_a_dropped_column_is_skipped() {
    use indexed_new_column::{ItemV1, ItemV2};
    let memcached = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    let memcached = memcached.addr();
    for db in Db::ALL {
        let shared = Shared::new(db, "dropped indexed column");
        let namespace = unique("ns");
        let v1 = shared.store(&memcached, &namespace);
        v1.migrate::<ItemV1>().expect("v1 migrates");
        shared.ddl("ALTER TABLE item ADD COLUMN note TEXT");
        let v2 = shared.store(&memcached, &namespace);
        v2.migrate::<ItemV2>().expect("v2 migrates");
        v2.insert(&ItemV2 { id: 1, category_id: 5, label: "one".into(), note: Some("n".into()) }).expect("insert");
        // v2 is retired; the team drops its index and column (SQLite refuses to drop
        // an indexed column), and leaves the registry as it is.
        drop(v2);
        shared.ddl(match db {
            Db::MySql => "DROP INDEX item_category_id_note_idx ON item",
            _ => "DROP INDEX item_category_id_note_idx",
        });
        shared.ddl("ALTER TABLE item DROP COLUMN note");
        let other = shared.store(&memcached, &namespace);
        assert_eq!(ItemV1::in_category(&other, 5).expect("read").len(), 1, "{db:?}");
        v1.insert(&ItemV1 { id: 2, category_id: 5, label: "two".into() }).unwrap_or_else(|e| panic!("{db:?}: {e}"));
        v1.update(&ItemV1 { id: 1, category_id: 6, label: "one".into() }).unwrap_or_else(|e| panic!("{db:?}: {e}"));
        v1.delete::<ItemV1>(&2).unwrap_or_else(|e| panic!("{db:?}: {e}"));
        v1.delete::<ItemV1>(&1).unwrap_or_else(|e| panic!("{db:?}: a second delete: {e}"));
        assert_eq!(ItemV1::in_category(&other, 5).expect("read"), Vec::<ItemV1>::new(), "{db:?}");
        assert_eq!(ItemV1::in_category(&other, 6).expect("read"), Vec::<ItemV1>::new(), "{db:?}");
    }
}

// ---------------------------------------------------------------- an ordered index added

/// v1 of a cart's lines indexes `cart_id` alone; v2 declares the ordered index
/// `(cart_id, order_by = position)` (issue 16) on the same table, and pages through
/// it. v1 appends to v2's ordered nodes only because v2's `migrate` registered the
/// index: its appends are plain entries (no order value), which make v2's node unable
/// to order itself until a read writes it back verified.
pub mod ordered {
    use super::*;

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "cart_line")]
    pub struct LineV1 {
        #[memdex(key)]
        pub id: i64,
        #[memdex(index)]
        pub cart_id: i64,
        pub position: i64,
        pub label: String,
    }

    #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[memdex(table = "cart_line")]
    #[memdex(index(cart_id, order_by = position))]
    pub struct LineV2 {
        #[memdex(key)]
        pub id: i64,
        pub cart_id: i64,
        pub position: i64,
        pub label: String,
    }
}

/// The pages v2 reads: `(cart, descending, limit, offset, after the line with this
/// id)`, ascending and descending, by offset and by keyset.
const LINE_PAGES: [(i64, bool, u64, u64, Option<i64>); 7] = [
    (1, false, 4, 0, None),
    (1, false, 4, 4, None),
    (1, false, 5, 8, None),
    (1, true, 4, 0, None),
    (1, true, 3, 5, None),
    (1, false, 4, 0, Some(5)),
    (2, false, 3, 0, None),
];

/// Every page of [`LINE_PAGES`] as v2 reads it, against the table as the test knows
/// it (ordered by position, reversed when descending, ties by ascending id).
fn check_line_pages(v2: &Store, table: &BTreeMap<i64, ordered::LineV2>, when: &str, problems: &mut Vec<String>) {
    use ordered::LineV2;
    for (cart, descending, limit, offset, after) in LINE_PAGES {
        let order = |l: &LineV2| (if descending { -l.position } else { l.position }, l.id);
        let after = after.and_then(|id| table.get(&id)).cloned();
        let mut want: Vec<LineV2> = table
            .values()
            .filter(|l| l.cart_id == cart && after.as_ref().is_none_or(|last| order(l) > order(last)))
            .cloned()
            .collect();
        want.sort_by_key(order);
        let want: Vec<LineV2> = want.into_iter().skip(offset as usize).take(limit as usize).collect();
        let q = select!(LineV2, |l| l.cart_id == cart);
        let q = if descending { q.order_by_desc(LineV2::position()) } else { q.order_by(LineV2::position()) };
        let q = q.limit(limit).offset(offset);
        let q = match &after {
            Some(last) => q.after(last),
            None => q,
        };
        let what =
            format!("cart {cart}, desc {descending}, limit {limit}, offset {offset}, after {:?}", after.map(|l| l.id));
        match q.fetch(v2) {
            Ok(got) if got == want => {}
            Ok(got) => problems.push(format!("{when}: v2's page {what}:\n      got  {got:?}\n      want {want:?}")),
            Err(e) => problems.push(format!("{when}: v2's page {what}: error {e}")),
        }
    }
}

/// One write of v1: `(id, cart, position)` for an update or an insert.
#[derive(Clone, Copy)]
enum LineWrite {
    Update(i64, i64, i64),
    Insert(i64, i64, i64),
    Relabel(i64),
    Delete(i64),
}

/// v1 (no ordered index) reorders, moves between carts, inserts, relabels and
/// deletes lines while v2's ordered nodes are cold and hot; v2's pages, read after
/// each write (twice: the read after a clean-up orders the node itself again), are
/// right on every database.
#[test]
fn an_ordered_index_only_the_new_version_declares() {
    use ordered::{LineV1, LineV2};
    let problems = each_db("ordered index", |shared, memcached| {
        let namespace = unique("migrate");
        shared.store(memcached, &namespace).migrate::<LineV1>().expect("v1 migrates");
        shared.store(memcached, &namespace).migrate::<LineV2>().expect("v2 migrates: registers its ordered index");
        let mut problems = Vec::new();
        for warm in [Warm::Cold, Warm::ReaderLast] {
            let context = format!("{:?}, an ordered index only v2 declares, {warm:?}", shared.db);
            shared.ddl("DELETE FROM cart_line");
            let namespace = unique("ns");
            let (v1, v2) = (shared.store(memcached, &namespace), shared.store(memcached, &namespace));
            let mut table: BTreeMap<i64, LineV2> = BTreeMap::new();
            let lines = (1..=12).map(|id| (id, 1, id * 10)).chain((101..=103).map(|id| (id, 2, id)));
            for (id, cart_id, position) in lines {
                let line = LineV2 { id, cart_id, position, label: format!("line {id}") };
                table.insert(id, line.clone());
                v1.insert(&LineV1 { id, cart_id, position, label: line.label }).expect("seed");
            }
            if warm != Warm::Cold {
                check_line_pages(&v2, &table, "warming", &mut problems);
                check_line_pages(&v2, &table, "warming, hot", &mut problems);
            }
            let writes = [
                ("line 6 moves behind the others", LineWrite::Update(6, 1, 1_000)),
                ("line 11 moves into the first pages", LineWrite::Update(11, 1, 25)),
                ("line 3 leaves for cart 2", LineWrite::Update(3, 2, 30)),
                ("line 102 arrives from cart 2", LineWrite::Update(102, 1, 45)),
                ("line 13 is inserted first", LineWrite::Insert(13, 1, 5)),
                ("line 4 is relabelled in place", LineWrite::Relabel(4)),
                ("line 8 is deleted", LineWrite::Delete(8)),
            ];
            for (what, change) in writes {
                let written = match change {
                    LineWrite::Delete(id) => v1.delete::<LineV1>(&id).map(|()| drop(table.remove(&id))),
                    LineWrite::Update(id, cart_id, position) | LineWrite::Insert(id, cart_id, position) => {
                        let line = LineV1 { id, cart_id, position, label: format!("line {id}") };
                        table.insert(id, LineV2 { id, cart_id, position, label: line.label.clone() });
                        if matches!(change, LineWrite::Insert(..)) { v1.insert(&line) } else { v1.update(&line) }
                    }
                    LineWrite::Relabel(id) => {
                        let was = table.get(&id).cloned().expect("a line of the table");
                        let line =
                            LineV1 { id, cart_id: was.cart_id, position: was.position, label: "relabelled".into() };
                        table.insert(id, LineV2 { label: line.label.clone(), ..was });
                        v1.update(&line)
                    }
                };
                written.unwrap_or_else(|e| panic!("{context}: v1: {what}: {e}"));
                check_line_pages(&v2, &table, &format!("after {what}"), &mut problems);
                check_line_pages(&v2, &table, &format!("after {what}, again"), &mut problems);
            }
            // The pages went through the cache, and the last read found the node
            // ordering itself again: a page reads its objects alone.
            let before = v2.stats();
            check_line_pages(&v2, &table, "hot at the end", &mut problems);
            let after = v2.stats();
            if after.degraded_calls != before.degraded_calls || after.node_hits - before.node_hits != 7 {
                problems.push(format!("{context}: v2's last pages did not all read their nodes: {after:?}"));
            }
            problems = problems
                .into_iter()
                .map(|p| if p.starts_with(&context) { p } else { format!("{context}\n    {p}") })
                .collect();
        }
        problems
    });
    assert_right("an ordered index only v2 declares", problems);
}

/// The outbox entry of a write by the old version names the nodes of the index
/// only the new version declares (found in the index registry during the write's
/// transaction): if the write's cache batch is lost, the drain must reach those
/// nodes too. On PostgreSQL the entry is written with the registry lookup, before
/// the registry's reply is known, and written again with those keys; elsewhere it
/// is written after the lookup. The cache is down at the write, so the entry stays
/// in the table to be read.
#[test]
fn an_old_version_writes_entry_names_the_new_versions_index() {
    use indexed::{ItemV1, ItemV2};
    let mut memcached = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    let addr = memcached.addr();
    let mut problems = Vec::new();
    let shareds: Vec<Shared> =
        [Db::Sqlite, Db::Postgres, Db::MySql].into_iter().map(|db| Shared::new(db, "entry names")).collect();
    let stores: Vec<(Store, Store)> = shareds
        .iter()
        .map(|shared| {
            let namespace = unique("entry");
            let (v1, v2) = (shared.store(&addr, &namespace), shared.store(&addr, &namespace));
            migrate_both::<ItemV1, ItemV2>(shared, &v1, &v2);
            v1.insert(&ItemV1::from_row(&row(1, 5, "old", None))).expect("v1 inserts");
            (v1, v2)
        })
        .collect();
    memcached.kill();
    for (shared, (v1, _v2)) in shareds.iter().zip(&stores) {
        v1.update(&ItemV1::from_row(&row(1, 6, "new", None))).expect("v1 updates with the cache down");
        // `keys` is a reserved word on MariaDB: every column, the keys second.
        let entries = SqlQuery { text: "SELECT * FROM memdex_outbox".into(), params: Vec::new() };
        let keys: Vec<String> = (shared.raw.query(&entries, &[Type::Int, Type::Text, Type::Int, Type::Text]))
            .unwrap_or_else(|e| panic!("{:?}: read the outbox: {e}", shared.db))
            .into_iter()
            .filter_map(|row| if let Some(Value::Text(keys)) = row.into_iter().nth(1) { Some(keys) } else { None })
            .flat_map(|keys| keys.lines().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        for label in ["old", "new"] {
            if !keys.iter().any(|k| k.contains("label=") && k.ends_with(label)) {
                problems.push(format!("{:?}: no key of v2's label={label} node in the outbox: {keys:?}", shared.db));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
