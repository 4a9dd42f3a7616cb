//! Queries written once — as a Rust closure checked by rustc, or as Python-lambda
//! text parsed at run time — answered as **cache-aware index scans**: memcached (or
//! an in-process cache with the same semantics) in front of SQLite, PostgreSQL or
//! (feature `mysql`) MySQL/MariaDB.
//!
//! A filter such as `|c| c.city == city && c.status == "gold"` becomes both SQL for
//! the database and a set of equality criteria that name **index nodes** in the
//! cache: lists of the keys of the rows with those values
//! (`memdex:customer:0:city=Oslo&status=gold`), each entry naming the version of its
//! row. A read fetches the nodes, then the objects they list, drops what no longer
//! matches, and falls back to SQL on a miss. A write goes to the database first,
//! then appends the row's key to the nodes its new values belong to ("add eagerly,
//! remove lazily"). Paging and ordering never enter a key, so every page of a query
//! is served by the same nodes. A hot read is one round trip to the cache (two when
//! this process has not kept the objects yet), whatever the number of
//! alternatives, `in` values or rows.
//!
//! Every example on this page is a doctest that runs on SQLite in memory with the
//! in-process cache (`Store::builder().sqlite_in_memory().in_process_cache()`).
//! Only the ones that need a server (memcached, PostgreSQL) are compiled and not
//! run, and one shows a compile error.
//!
//! # Contents
//!
//! * [A first store](#a-first-store)
//! * [Models](#models) and the [attribute reference](#attribute-reference)
//! * [Writing](#writing): insert, update, delete, transactions
//! * [Reading](#reading): `select!`, `fetch`, `count`, ordering and paging
//! * [Scans](#scans): `scan!`, the database without the cache
//! * [Aggregates](#aggregates): `view!`
//! * [The text form](#the-text-form): `recall_text`, `select_text`
//! * [The query language](#the-query-language), in both spellings
//! * [Which queries an index serves](#which-queries-an-index-serves)
//! * [EXPLAIN and SQL](#explain-and-sql)
//! * [Counters and the cache conversation](#counters-and-the-cache-conversation)
//! * [Errors](#errors)
//! * [Configuration](#configuration), [schema ownership](#schema-ownership), [async](#async)
//!   and [cargo features](#cargo-features)
//! * [Where to read next](#where-to-read-next)
//!
//! # A first store
//!
//! ```
//! use memdex::{Model, Store, select};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! #[memdex(table = "customer")]
//! pub struct Customer {
//!     #[memdex(key)]
//!     pub id: i64,
//!     #[memdex(index(prefix = 1))]
//!     pub first_name: String,
//! }
//!
//! let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
//! store.migrate::<Customer>()?; // CREATE TABLE / CREATE INDEX … IF NOT EXISTS
//! for (id, name) in [(1, "mira"), (2, "nora"), (3, "mikkel")] {
//!     store.insert(&Customer { id, first_name: name.into() })?;
//! }
//!
//! // A Rust closure, checked by rustc and planned at compile time…
//! let m_names = select!(Customer, |c| c.first_name.starts_with("m")).fetch(&store)?;
//! assert_eq!(m_names.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 3]);
//!
//! // …or the same query as Python-lambda text, parsed and planned at run time.
//! let same = store.recall_text::<Customer>("lambda c: c.first_name.startswith('m')", &[])?;
//! assert_eq!(same, m_names);
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! The first `fetch` finds no index node for the prefix `m` in the cache, reads the
//! rows from SQLite and fills the node and the objects; the second query (the same
//! query, spelt as text) is answered from the cache. A [`Store`] is cheap to clone
//! and can be shared between threads; every call on it blocks (see [async](#async)
//! for `AsyncStore`).
//!
//! # Models
//!
//! A model is a struct with named fields, deriving [`Model`](macro@Model) next to
//! `Clone`, `serde::Serialize` and `serde::Deserialize` (cached objects are stored
//! serialized). `#[memdex(...)]` attributes name its table, its key and its indexes:
//!
//! ```
//! use memdex::Model;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! #[memdex(table = "customer")]           // the SQL table (default: `customer`, the name in snake_case)
//! #[memdex(index(city, status))]          // a composite index: one node per (city, status)
//! pub struct Customer {
//!     #[memdex(key)]                      // the primary key, always indexed
//!     pub id: i64,
//!     #[memdex(index(prefix = 1))]        // one node per first character: serves starts_with
//!     pub first_name: String,
//!     #[memdex(index)]                    // one node per value: serves ==, in, is_none()
//!     pub team_id: i64,
//!     pub city: String,
//!     pub status: String,
//!     #[memdex(column = "visits_total")]  // the SQL column, when it is not the field's name
//!     pub visits: i64,
//!     pub closed_at: Option<i64>,         // an Option is a nullable column
//! }
//!
//! let schema = Customer::schema();
//! assert_eq!(schema.table, "customer");
//! assert_eq!(Customer::INDEX_LIST, "id (key), (city, status), first_name (prefix 1), team_id");
//! assert_eq!(Customer::visits().field(), "visits"); // a column handle, for order_by
//! ```
//!
//! Field types, and an `Option` of any of them (nullable; `None` is NULL):
//!
//! | field type | feature | SQLite | PostgreSQL | MySQL/MariaDB | queries and indexes |
//! |---|---|---|---|---|---|
//! | `i64` `i32` `i16` `i8` `u32` `u16` `u8` | | `INTEGER` | `BIGINT` | `BIGINT` | every comparison, arithmetic |
//! | `f64` `f32` | | `REAL` | `DOUBLE PRECISION` | `DOUBLE` | every comparison, arithmetic |
//! | `String` | | `TEXT` | `TEXT` | `LONGTEXT` | every comparison (by bytes), string methods |
//! | `bool` | | `INTEGER` | `BOOLEAN` | `BOOLEAN` | `==`, `!=`, as a condition |
//! | `Vec<u8>` | always | `BLOB` | `BYTEA` | `LONGBLOB` | every comparison (by bytes), indexable |
//! | `chrono::DateTime<Utc>` | `chrono` | `INTEGER` (µs since 1970) | `TIMESTAMPTZ` | `BIGINT` (µs since 1970) | every comparison (in time), indexable |
//! | `time::OffsetDateTime` | `time` | as above | as above | as above | as above |
//! | `uuid::Uuid` | `uuid` | `BLOB` (16 bytes) | `UUID` | `BINARY(16)` | every comparison (by bytes), indexable |
//! | `serde_json::Value` | `json` | `TEXT` | `JSONB` | `JSON` | none: stored and read back only |
//! | an enum of unit variants, `#[memdex(text)]` | | as `String` | as `String` | as `String` | `==`, `!=`, `in`, indexable |
//!
//! `u64`, `usize`, `i128` and the like are refused: they do not fit the database's
//! `i64` exactly. The key is an integer or a `String`.
//!
//! * **Instants** are stored with microsecond precision (what every database keeps),
//!   as microseconds since 1970 where the database has no exact type of its own:
//!   equality and order are the same in SQL, in memory and in index node keys.
//!   Write instants with whole microseconds (`DateTime::from_timestamp_micros`,
//!   `OffsetDateTime::replace_microsecond`); finer digits are cut when stored, and an
//!   object cached before that cut would not equal the row read back. An
//!   `OffsetDateTime` reads back in UTC: the same instant, with offset zero.
//! * **Bytes** are a whole-value column. A query parameter that is a `Vec<u8>`,
//!   `&[u8]` or `[u8; N]` is one byte string (`c.data == bytes`);
//!   `list.contains(&c.small)` with a list of `u8` still tests membership.
//! * **JSON** (`serde_json::Value`) is stored and read back, never compared:
//!   a JSON field in a filter is a compile error at the field (in the text form, an
//!   error naming the field), and so is an index on one. The field needs
//!   `#[serde(with = "memdex::json")]` (`memdex::json::option` for an `Option`), since
//!   memdex caches objects in a compact format that a `serde_json::Value` cannot be
//!   read back from otherwise (`memdex::json`); the derive says so if it is missing.
//! * **Enums** of unit variants with serde's derives are stored as their variants'
//!   serde names (renames honoured) once [`text_enum!`] has made the type a column
//!   type and the field says `#[memdex(text)]`. Compare them with `==`, `!=` and
//!   `in`; an ordering comparison would compare the names in SQL but the declaration
//!   order in Rust, so leave `PartialOrd` off such enums. In the text form an enum
//!   field is a string (`e.kind == 'payment_failed'`).
//! * The text form has no literals of these types: bind them as parameters, as
//!   [`Value::Timestamp`] (microseconds since 1970), [`Value::Uuid`] (its 16 bytes,
//!   `*uuid.as_bytes()`) and [`Value::Bytes`]:
//!   `store.recall_text::<Event>("lambda e: e.at >= since", &[("since", Value::Timestamp(t.timestamp_micros()))])`.
//!   A value of another type (an integer for a timestamp) is a type error.
//! * `in` lists of these types bind one placeholder per element, where lists of
//!   numbers and strings longer than 100 bind as one parameter.
//!
//! The derive also generates a column handle per field with the field's visibility,
//! `Customer::visits() -> Col<Customer>`, for [`Select::order_by`].
//!
//! ## Attribute reference
//!
//! | attribute | where | meaning |
//! |---|---|---|
//! | `#[memdex(table = "customer")]` | struct | The SQL table. Default: the struct's name in snake_case (`OrderLine` → `order_line`). At most once, not empty. |
//! | `#[memdex(index(city, status))]` | struct | A composite index over the named fields, in that order. It serves an alternative of a query that pins every one of its fields with `==`, `in` or `is_none()`; its nodes are named by all the values (`…:city=Oslo&status=gold`). Any number of them, each naming a field at most once. |
//! | `#[memdex(key)]` | field | The primary key; exactly one field has it. A query that pins the key reads the objects directly, without an index node. It cannot be an `Option` or a float. |
//! | `#[memdex(index)]` | field | An index on this field alone: one node per value (`…:team_id=7`), listing the keys of the rows with that value. Serves `==`, `in` and `is_none()`. Not on the key (always indexed). |
//! | `#[memdex(index(prefix = n))]` | field | A prefix index on a `String` field (not an `Option`): one node per first `n` characters (`n ≥ 1`). Serves `starts_with(p)` when `p` is a literal of at least `n` characters or a captured value (a shorter value at run time is answered by the database). |
//! | `#[memdex(text)]` | field | The field is an enum made a column type by [`text_enum!`], stored as its variant's serde name (a text column). Combines with `index`. |
//! | `#[memdex(column = "visits_total")]` | field | The SQL column. Default: the field's name. Queries still name the field. No two fields may share a column. |
//!
//! Options combine in one attribute or several: `#[memdex(key, column = "item_id")]`,
//! `#[memdex(index, index(prefix = 2))]` (a whole-value and a prefix index on one
//! field). Every mistake — an unknown option, an index naming a field that does not
//! exist, no key, an unsupported type — is a compile error at the attribute it is
//! about, and one compile reports them all. The derive's own documentation,
//! [`Model`](macro@Model), lists what it generates.
//!
//! # Writing
//!
//! [`Store::insert`], [`Store::update`] and [`Store::delete`] each run in a
//! transaction of their own; [`Store::transaction`] groups several. The cache hears
//! of a write only after its commit, in one pipelined batch.
//!
//! ```
//! # use memdex::{Model, Store, select};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! # fn customer(id: i64, first_name: &str, city: &str, status: &str, visits: i64) -> Customer {
//! #     Customer { id, first_name: first_name.into(), team_id: id % 2, city: city.into(), status: status.into(), visits, closed_at: None }
//! # }
//! let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
//! store.migrate::<Customer>()?;
//!
//! store.insert(&customer(1, "mira", "Oslo", "gold", 12))?;
//! store.insert(&customer(2, "mads", "Oslo", "gold", 3))?;
//! let gold_in_oslo = select!(Customer, |c| c.city == "Oslo" && c.status == "gold");
//! assert_eq!(gold_in_oslo.count(&store)?, 2);
//!
//! // An update moves a row between index nodes: it is listed by its new node at
//! // once, and dropped from the old one by the next read that sees it moved.
//! store.update(&customer(2, "mads", "Bergen", "gold", 4))?;
//! assert_eq!(gold_in_oslo.count(&store)?, 1);
//!
//! store.delete::<Customer>(&1)?;
//! assert_eq!(gold_in_oslo.count(&store)?, 0);
//!
//! // Several writes in one database transaction: all or nothing.
//! store.transaction(|tx| {
//!     tx.insert(&customer(3, "nora", "Oslo", "gold", 9))?;
//!     tx.update(&customer(2, "mads", "Oslo", "gold", 5))?;
//!     Ok(())
//! })?;
//! assert_eq!(gold_in_oslo.count(&store)?, 2);
//!
//! // An `Err` from the closure rolls back, and no cache key is touched.
//! let failed = store.transaction(|tx| {
//!     tx.insert(&customer(4, "ola", "Oslo", "gold", 1))?;
//!     tx.insert(&customer(3, "nora again", "Oslo", "gold", 1)) // key 3 exists
//! });
//! assert!(failed.unwrap_err().is_unique_violation());
//! assert_eq!(gold_in_oslo.count(&store)?, 2); // customer 4 was rolled back
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! `update` and `delete` of a key that has no row fail with [`Error::NotFound`]. A
//! float field holding NaN is refused before the database sees it
//! ([`Error::NotANumber`]): no database orders or compares NaN the way Rust does.
//!
//! # Reading
//!
//! [`select!`] takes the model and a closure; its value is a [`Select`], which runs
//! on a store with [`Select::fetch`] (the rows) or [`Select::count`]. Variables the
//! closure captures are bound parameters, evaluated when the `Select` is built.
//! [`Select::order_by`], [`Select::order_by_desc`], [`Select::limit`] and
//! [`Select::offset`] apply in memory after the rows are fetched, so every page is
//! served by the same index nodes.
//!
//! ```
//! # use memdex::{Model, Store, select};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! # fn customer(id: i64, first_name: &str, city: &str, status: &str, visits: i64) -> Customer {
//! #     Customer { id, first_name: first_name.into(), team_id: id % 2, city: city.into(), status: status.into(), visits, closed_at: None }
//! # }
//! # let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
//! # store.migrate::<Customer>()?;
//! # for c in [
//! #     customer(1, "mira", "Oslo", "gold", 12),
//! #     customer(2, "Mads", "Oslo", "gold", 3),
//! #     customer(3, "mikkel", "Oslo", "basic", 7),
//! #     customer(4, "nora", "Bergen", "gold", 9),
//! # ] {
//! #     store.insert(&c)?;
//! # }
//! let city = String::from("Oslo");
//! let ids = |rows: Vec<Customer>| rows.iter().map(|c| c.id).collect::<Vec<_>>();
//!
//! // Served by the composite index (city, status): one node.
//! let gold = select!(Customer, |c| c.city == city && c.status == "gold");
//! assert_eq!(ids(gold.fetch(&store)?), [1, 2]);
//! assert_eq!(gold.count(&store)?, 2);
//!
//! // `in` and `||` read one node per value, all in the same round trip; the test
//! // of `visits` is applied to the objects (and is part of the SQL on a miss).
//! let statuses = vec![String::from("gold"), String::from("basic")];
//! let busy = select!(Customer, |c| c.city == city && statuses.contains(&c.status) && c.visits > 5);
//! assert_eq!(ids(busy.fetch(&store)?), [1, 3]);
//!
//! // Ordering and paging, in memory: every page comes from the same nodes.
//! let page = select!(Customer, |c| c.city == city && (c.status == "gold" || c.status == "basic"))
//!     .order_by_desc(Customer::visits())
//!     .limit(2)
//!     .offset(1);
//! assert_eq!(ids(page.fetch(&store)?), [3, 2]);
//!
//! // Strings order by bytes: "Mads" before "mira".
//! let by_name = select!(Customer, |c| c.city == city && c.status == "gold").order_by(Customer::first_name());
//! assert_eq!(ids(by_name.fetch(&store)?), [2, 1]);
//!
//! // The key needs no index node: the objects are read directly.
//! let wanted = vec![1_i64, 4];
//! assert_eq!(ids(select!(Customer, |c| wanted.contains(&c.id)).fetch(&store)?), [1, 4]);
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! Rows come back in key order unless ordered otherwise. A query no index serves
//! does not compile: see [which queries an index serves](#which-queries-an-index-serves).
//!
//! # Scans
//!
//! [`scan!`] runs the same language on the database, without the cache and without
//! an index requirement: for reports and rare queries. Its [`Scan`] orders, limits
//! and offsets in SQL (in memory when the filter has arithmetic, whose SQL only
//! selects a superset for the in-memory predicate to decide).
//!
//! ```
//! # use memdex::{Model, Store, scan};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! # fn customer(id: i64, first_name: &str, city: &str, status: &str, visits: i64) -> Customer {
//! #     Customer { id, first_name: first_name.into(), team_id: id % 2, city: city.into(), status: status.into(), visits, closed_at: None }
//! # }
//! # let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
//! # store.migrate::<Customer>()?;
//! # for c in [
//! #     customer(1, "mira", "Oslo", "gold", 12),
//! #     customer(2, "Mads", "Oslo", "gold", 3),
//! #     customer(3, "mikkel", "Oslo", "basic", 7),
//! #     customer(4, "nora", "Bergen", "gold", 9),
//! # ] {
//! #     store.insert(&c)?;
//! # }
//! let busy = scan!(Customer, |c| c.visits > 8 && c.closed_at.is_none())
//!     .order_by_desc(Customer::visits());
//! assert_eq!(busy.fetch(&store)?.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 4]);
//! assert_eq!(busy.count(&store)?, 2);
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! # Aggregates
//!
//! [`view!`] computes `count()`, `sum`, `min`, `max` or `avg` over a model, as the
//! LINQ post's `store.view(Master, lambda m: avg(m.Runs))`. Over the whole table the
//! database computes it; with a filter first (`view!(T, filter, aggregate)`, the
//! filter following [`select!`]'s index rule) the rows come through the cache and
//! the aggregate is computed in memory. `count()` gives a `u64`, the others an
//! `Option<f64>` (`None` over no rows; NULLs are skipped, as in SQL).
//!
//! ```
//! # use memdex::{Model, Store, view};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! # fn customer(id: i64, first_name: &str, city: &str, status: &str, visits: i64) -> Customer {
//! #     Customer { id, first_name: first_name.into(), team_id: id % 2, city: city.into(), status: status.into(), visits, closed_at: None }
//! # }
//! # let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
//! # store.migrate::<Customer>()?;
//! # for c in [
//! #     customer(1, "mira", "Oslo", "gold", 12),
//! #     customer(2, "Mads", "Oslo", "gold", 3),
//! #     customer(3, "mikkel", "Oslo", "basic", 7),
//! #     customer(4, "nora", "Bergen", "gold", 9),
//! # ] {
//! #     store.insert(&c)?;
//! # }
//! let average: Option<f64> = view!(Customer, |c| avg(c.visits)).fetch(&store)?;
//! assert_eq!(average, Some(31.0 / 4.0));
//!
//! let oslo_gold = view!(Customer, |c| c.city == "Oslo" && c.status == "gold", |c| max(c.visits));
//! assert_eq!(oslo_gold.fetch(&store)?, Some(12.0));
//!
//! let team: i64 = 1;
//! let members: u64 = view!(Customer, |c| c.team_id == team, |c| count()).fetch(&store)?;
//! assert_eq!(members, 2);
//!
//! let none = view!(Customer, |c| c.city == "Paris" && c.status == "gold", |c| sum(c.visits));
//! assert_eq!(none.fetch(&store)?, None);
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! # The text form
//!
//! The same language spelt as a Python lambda, for queries that arrive at run time
//! (a console, an API, a config file). [`Store::recall_text`] returns the rows;
//! [`Store::select_text`] returns a [`Select`] to order, page, count or explain.
//! Free names are parameters, bound by name from the slice of [`Value`]s (any
//! integer, float, `bool`, `&str`, `String`, `Option` or `Vec` of those converts
//! with `.into()`). Text queries are planned exactly as `select!` plans the same
//! query, and each prepared text is kept for reuse
//! ([`StoreBuilder::text_cache_capacity`]).
//!
//! ```
//! # use memdex::{Model, Store};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! # fn customer(id: i64, first_name: &str, city: &str, status: &str, visits: i64) -> Customer {
//! #     Customer { id, first_name: first_name.into(), team_id: id % 2, city: city.into(), status: status.into(), visits, closed_at: None }
//! # }
//! # let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
//! # store.migrate::<Customer>()?;
//! # for c in [
//! #     customer(1, "mira", "Oslo", "gold", 12),
//! #     customer(2, "Mads", "Oslo", "gold", 3),
//! #     customer(3, "mikkel", "Oslo", "basic", 7),
//! #     customer(4, "nora", "Bergen", "gold", 9),
//! # ] {
//! #     store.insert(&c)?;
//! # }
//! use memdex::Error;
//!
//! let rows: Vec<Customer> = store.recall_text(
//!     "lambda c: c.city == city and c.status in ('gold', 'basic') and not c.first_name.startswith('x')",
//!     &[("city", "Oslo".into())],
//! )?;
//! assert_eq!(rows.len(), 3);
//!
//! let teams = vec![0_i64, 7];
//! let page = store
//!     .select_text::<Customer>("lambda c: c.team_id in teams and c.closed_at is None", &[("teams", teams.into())])?
//!     .order_by(Customer::visits())
//!     .limit(1);
//! assert_eq!(page.fetch(&store)?[0].first_name, "Mads");
//! assert_eq!(page.count(&store)?, 2); // count ignores limit and offset
//!
//! // A mistake is an error with line, column and a caret under the offending text.
//! let err = store.recall_text::<Customer>("lambda c: c.frist_name == 'mira'", &[]).unwrap_err();
//! assert!(matches!(err, Error::Query { .. }));
//! assert!(err.to_string().contains("did you mean `first_name`?"), "{err}");
//!
//! // A query no index serves is an error here (a compile error for `select!`).
//! let err = store.recall_text::<Customer>("lambda c: c.visits > 3", &[]).unwrap_err();
//! assert!(matches!(err, Error::Unindexable { .. }), "{err}");
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! The first error above reads:
//!
//! ```text
//! error: `frist_name` is not a field of Customer; did you mean `first_name`?
//!  --> line 1, column 11
//!   |
//! 1 | lambda c: c.frist_name == 'mira'
//!   |           ^^^^^^^^^^^^
//!   = hint: the fields are id, first_name, team_id, city, status, visits, closed_at
//! ```
//!
//! # The query language
//!
//! One language, two spellings: the closure of [`select!`], [`scan!`] and [`view!`],
//! and the Python lambda of the text form. Both give the same plan, cache keys and
//! SQL. The closure's parameter may have any name; in the text form it is the
//! lambda's parameter (`lambda c: …`).
//!
//! | Rust closure | text form | meaning (SQL) |
//! |---|---|---|
//! | `c.field` | `c.field` | a field of the row (its column) |
//! | `==  !=  <  <=  >  >=` | same | comparisons (`= <> < <= > >=`). Strings compare by bytes. On an `Option` field `==` and `!=` keep Rust's meaning: `None == None` |
//! | `&&  \|\|  !` | `and  or  not` | `AND OR NOT` |
//! | `+  -  *  /  %`, unary `-` | same | arithmetic with Rust's meaning: integer `/` truncates; an overflow or a division by zero makes the comparison that uses it false, never a panic or a database error |
//! | `c.s.starts_with(x)` | `c.s.startswith(x)` | a pattern match (`LIKE`; SQLite: `GLOB`) with the wildcards in `x` escaped: case-sensitive and byte-exact in every database. A prefix index serves it |
//! | `c.s.ends_with(x)` | `c.s.endswith(x)` | the same pattern match, anchored at the end |
//! | `c.s.contains(x)` | `x in c.s` | the same pattern match, anywhere in the string |
//! | `c.s.eq_ignore_ascii_case(x)` | `ieq(c.s, x)` | equality ignoring ASCII case only |
//! | `c.s.to_lowercase()` | `c.s.lower()` | Unicode lowercase (`LOWER`) |
//! | `c.s.len()` | `len(c.s)` | the length in bytes, as `str::len` |
//! | `[1, 2].contains(&c.x)`, `ids.contains(&c.x)` | `c.x in (1, 2)`, `c.x in [1, 2]`, `c.x in ids` | membership (`IN`); `not in` in the text form |
//! | `c.o.is_none()`, `c.o.is_some()` | `c.o is None`, `c.o is not None` | `IS NULL`, `IS NOT NULL` |
//! | `c.o == Some(v)`, `c.o == None` | `c.o == v`, `c.o == None` | null-aware equality with an `Option` field |
//! | literals: integers, floats, `"strings"`, `true`, `false` | integers, floats (`1.5`, `1e3`, `.5`), `'strings'` or `"strings"`, `True`, `False`, `None` | bound parameters, never spliced into SQL text |
//! | captured values: any expression that does not mention the parameter (`cat`, `&name`, `x + 1`) | free names, bound by name (`&[("cat", 5.into())]`) | bound parameters |
//! | `view!(T, \|m\| avg(m.f))`: `count()`, `sum(e)`, `min(e)`, `max(e)`, `avg(e)` | `lambda m: avg(m.f)` | aggregates (`COUNT(*) SUM MIN MAX AVG`). The store runs them from [`view!`]; the text spelling is parsed and checked by the [`grammar`] crate (`text::parse`, `check::aggregate`, `sql::aggregate`), as `examples/src/linq.rs` does |
//!
//! Anything else — another function or method, a field of a field, a second
//! closure parameter, a block — is a compile error at that sub-expression (closure),
//! or an [`Error::Query`] with line, column and caret (text). The SQL, the
//! in-memory predicate and the cached path return the same rows for every input:
//! NULLs, Unicode, `%` and `_` in strings, case, and float edge cases included.
//!
//! ```
//! # use memdex::{Model, Store, select, scan};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! # fn customer(id: i64, first_name: &str, city: &str, status: &str, visits: i64) -> Customer {
//! #     Customer { id, first_name: first_name.into(), team_id: id % 2, city: city.into(), status: status.into(), visits, closed_at: None }
//! # }
//! # let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
//! # store.migrate::<Customer>()?;
//! # for c in [
//! #     customer(1, "mira", "Oslo", "gold", 12),
//! #     customer(2, "Mads", "Oslo", "gold", 3),
//! #     customer(3, "mikkel", "Oslo", "basic", 7),
//! #     customer(4, "nora", "Bergen", "gold", 9),
//! # ] {
//! #     store.insert(&c)?;
//! # }
//! # store.update(&Customer { closed_at: Some(2024), ..customer(3, "mikkel", "Oslo", "basic", 7) })?;
//! let ids = |rows: Vec<Customer>| rows.iter().map(|c| c.id).collect::<Vec<_>>();
//! let text = |query: &str| -> Result<Vec<i64>, memdex::Error> {
//!     Ok(ids(store.recall_text::<Customer>(query, &[])?))
//! };
//!
//! // Each pair is one query in both spellings; every one is served by an index.
//! let closure = select!(Customer, |c| c.team_id == 1 && c.closed_at.is_none()).fetch(&store)?;
//! assert_eq!(ids(closure), text("lambda c: c.team_id == 1 and c.closed_at is None")?);
//!
//! let closure = select!(Customer, |c| c.first_name.starts_with("m") && !c.first_name.ends_with("l"));
//! assert_eq!(ids(closure.fetch(&store)?), [1]);
//! assert_eq!(text("lambda c: c.first_name.startswith('m') and not c.first_name.endswith('l')")?, [1]);
//!
//! let closure = select!(Customer, |c| [0, 1].contains(&c.team_id) && c.first_name.eq_ignore_ascii_case("MADS"));
//! assert_eq!(ids(closure.fetch(&store)?), [2]);
//! assert_eq!(text("lambda c: c.team_id in (0, 1) and ieq(c.first_name, 'MADS')")?, [2]);
//!
//! let closure = select!(Customer, |c| c.team_id == 0 && c.first_name.to_lowercase() == "mads");
//! assert_eq!(ids(closure.fetch(&store)?), [2]);
//! assert_eq!(text("lambda c: c.team_id == 0 and c.first_name.lower() == 'mads'")?, [2]);
//!
//! let closure = select!(Customer, |c| c.city == "Oslo" && c.status == "gold" && (c.visits * 2 - 1 > 10 || c.first_name.contains("ad")));
//! assert_eq!(ids(closure.fetch(&store)?), [1, 2]);
//! assert_eq!(text("lambda c: c.city == 'Oslo' and c.status == 'gold' and (c.visits * 2 - 1 > 10 or 'ad' in c.first_name)")?, [1, 2]);
//!
//! let closure = select!(Customer, |c| c.team_id == 1 && c.closed_at == Some(2024) && c.first_name.len() == 6);
//! assert_eq!(ids(closure.fetch(&store)?), [3]);
//! assert_eq!(text("lambda c: c.team_id == 1 and c.closed_at == 2024 and len(c.first_name) == 6")?, [3]);
//!
//! let not_these = vec![String::from("nora")];
//! let closure = select!(Customer, |c| c.team_id == 0 && c.closed_at == None && !not_these.contains(&c.first_name));
//! assert_eq!(ids(closure.fetch(&store)?), [2]);
//! assert_eq!(text("lambda c: c.team_id == 0 and c.closed_at == None and c.first_name not in ('nora',)")?, [2]);
//!
//! // Any filter, on the database: a scan.
//! assert_eq!(ids(scan!(Customer, |c| c.visits % 3 == 0 && c.id != 2).fetch(&store)?), [1, 4]);
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! # Which queries an index serves
//!
//! A [`select!`] filter is normalised to alternatives (disjunctive normal form, at
//! most 64 of them by default: [`StoreBuilder::disjunct_limit`]). Every alternative
//! must pin all the fields of one index of the model, or its key, with `==`, `in`
//! or `is_none()` — or, for a prefix index, with `starts_with` of a literal at least
//! as long as the prefix, or of a captured value. The most selective index wins
//! (the key, then composite indexes, then single, then prefix); the rest of the
//! alternative filters the objects in memory. An alternative no index serves is a
//! **compile error** at that alternative, naming the model's indexes and what to add:
//!
//! ```compile_fail,E0080
//! # use memdex::{Model, select};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! // error[E0080]: evaluation panicked: memdex: no index of Customer serves `c.visits > 3` …
//! let q = select!(Customer, |c| c.visits > 3);
//! ```
//!
//! The text form returns [`Error::Unindexable`] with the same words. [`scan!`] (or
//! an index added to the model) is the way to run such a query.
//!
//! # EXPLAIN and SQL
//!
//! [`Select::explain`] shows the plan without running anything: per alternative the
//! index, the node key template and the residual filter, the SQL a miss runs, and
//! the round trips on a hot cache. [`Select::sql`] gives the SQL of any dialect.
//!
//! ```
//! # use memdex::{Model, select};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! use memdex::Dialect;
//!
//! let city = "Oslo";
//! let q = select!(Customer, |c| c.city == city && c.status == "gold" && c.visits > 10);
//! let plan = q.explain(Dialect::Sqlite);
//! assert_eq!(plan.disjuncts.len(), 1);
//! assert_eq!(plan.disjuncts[0].access, "index (city, status)");
//! assert_eq!(plan.disjuncts[0].residual.as_deref(), Some("c.visits > 10"));
//! assert_eq!(plan.hot_round_trips, 2);
//! println!("{plan}"); // the plan, printed as below
//!
//! assert!(q.sql(Dialect::Postgres).starts_with("SELECT "));
//! assert!(q.sql(Dialect::Postgres).contains("$1")); // values are always bound
//! ```
//!
//! ```text
//! plan for Customer: 1 disjunct, 2 round trips on a hot cache
//!   [1] c.city == p0 and c.status == "gold" and c.visits > 10
//!       index (city, status)  →  get memdex:customer:0:city={p0}&status=gold
//!       residual: c.visits > 10
//! sql (on a miss): SELECT "id", "first_name", "team_id", "city", "status", "visits_total", "closed_at" FROM "customer" WHERE "city" = ? AND "status" = ? AND "visits_total" > ?
//! ```
//!
//! Captured values appear as `p0`, `p1`, … (text parameters by their names). The
//! two round trips are the nodes, then the objects they list (and, over several
//! nodes, the nodes' CAS again); when this process's near cache holds those objects
//! at the versions the nodes name (on by default,
//! [`StoreBuilder::near_cache_capacity`]) and, over several nodes, has seen each
//! node's exact bytes before, the second is skipped.
//!
//! # Counters and the cache conversation
//!
//! [`Store::stats`] returns the [`Stats`] counted since the store was built: index
//! node and object hits and misses, near-cache hits, fills, lazy removals,
//! database statements, cache round trips and errors, degraded calls, writes.
//! [`StoreBuilder::trace_to`] (or [`StoreBuilder::trace`], to stderr) shows the
//! conversation with the cache and the database as it happens, the way the
//! memcached-indices post shows it:
//!
//! ```text
//! get memdex:customer:0:city=Oslo&status=gold (lease 10s on miss)  ->  miss, lease won
//! SELECT "id", "first_name", … FROM "customer" WHERE ("city" = ? AND "status" = ?)  [2 bound]
//! …
//! cas memdex:customer:0:city=Oslo&status=gold 3600 21 1  ->  stored
//! ```
//!
//! ```
//! # use memdex::{Model, Store, select};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # #[memdex(index(city, status))]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! #     #[memdex(index)] pub team_id: i64,
//! #     pub city: String,
//! #     pub status: String,
//! #     #[memdex(column = "visits_total")] pub visits: i64,
//! #     pub closed_at: Option<i64>,
//! # }
//! # fn customer(id: i64, first_name: &str, city: &str, status: &str, visits: i64) -> Customer {
//! #     Customer { id, first_name: first_name.into(), team_id: id % 2, city: city.into(), status: status.into(), visits, closed_at: None }
//! # }
//! use std::sync::{Arc, Mutex};
//!
//! let lines = Arc::new(Mutex::new(Vec::<String>::new()));
//! let sink = lines.clone();
//! let store = Store::builder()
//!     .sqlite_in_memory()
//!     .in_process_cache()
//!     .near_cache_capacity(16 << 20) // decoded objects kept by version (default 64 MiB)
//!     .trace_to(move |line| sink.lock().unwrap().push(line.to_owned()))
//!     .build()?;
//! store.migrate::<Customer>()?;
//! store.insert(&customer(1, "mira", "Oslo", "gold", 12))?;
//! store.insert(&customer(2, "mads", "Oslo", "gold", 3))?;
//! let gold = select!(Customer, |c| c.city == "Oslo" && c.status == "gold");
//!
//! let start = store.stats();
//! lines.lock().unwrap().clear();
//! assert_eq!(gold.count(&store)?, 2); // cold: the node is filled from SQLite
//! let cold = store.stats();
//! assert_eq!(cold.node_misses - start.node_misses, 1);
//! assert!(cold.db_queries > start.db_queries);
//! let conversation = lines.lock().unwrap().join("\n");
//! assert!(conversation.contains("city=Oslo&status=gold"), "{conversation}");
//!
//! assert_eq!(gold.count(&store)?, 2); // hot: the node and the near cache answer
//! let hot = store.stats();
//! assert_eq!(hot.node_hits - cold.node_hits, 1);
//! assert_eq!(hot.near_hits - cold.near_hits, 2);
//! assert_eq!(hot.db_queries, cold.db_queries);
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! Every operation is also a `tracing` span named `memdex` (op, model, `db.system`,
//! round trips, statements, hits and misses); with the `metrics` feature the same
//! figures are counters, a latency histogram and gauges (the database pool, cache servers
//! down, the near cache's bytes and entries) on the `metrics` facade, refreshed whenever
//! [`Store::stats`] is read and at every periodic outbox drain. [`Stats::near_evictions`]
//! (`memdex_near_evictions_total`) growing under a steady load says the near cache is
//! smaller than the working set ([`StoreBuilder::near_cache_capacity`]).
//!
//! # Errors
//!
//! Every call returns [`Error`]. A cache failure is never an error: the database
//! answers instead and [`Stats::cache_errors`] / [`Stats::degraded_calls`] count it.
//! Database errors keep their code and their source:
//! [`Error::is_unique_violation`] holds for a duplicate key or unique index on every
//! database, and [`Error::Database`] carries a [`db::DbError`] with its SQLSTATE or
//! SQLite code ([`db::DbError::code`]).
//!
//! ```
//! # use memdex::{Model, Store};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! # }
//! use memdex::Error;
//!
//! let store = Store::builder().sqlite_in_memory().in_process_cache().build()?;
//! store.migrate::<Customer>()?;
//! let mira = Customer { id: 1, first_name: "mira".into() };
//! store.insert(&mira)?;
//!
//! let err = store.insert(&mira).unwrap_err();
//! assert!(err.is_unique_violation());
//!
//! let err = store.delete::<Customer>(&99).unwrap_err();
//! assert!(matches!(err, Error::NotFound { ref model, ref key } if model == "Customer" && key == "99"), "{err}");
//!
//! let err = Store::builder().url("redis://localhost").build().unwrap_err();
//! assert!(matches!(err, Error::Config(_)), "{err}");
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! # Configuration
//!
//! [`Store::builder`] chooses a database (required) and a cache (the in-process
//! cache by default), then tunables: key [`namespace`](StoreBuilder::namespace) and
//! [`generation`](StoreBuilder::generation), [`ttl`](StoreBuilder::ttl),
//! [`cache_timeouts`](StoreBuilder::cache_timeouts),
//! [`near_cache_capacity`](StoreBuilder::near_cache_capacity),
//! [`outbox`](StoreBuilder::outbox) timing, and more on [`StoreBuilder`]. In
//! deployment the database is a URL ([`StoreBuilder::url`]: `sqlite://path`,
//! `sqlite::memory:`, `postgres://…`, `mysql://…`) and the cache a list of memcached
//! servers, whose keys are sharded across them; [`StoreBuilder::from_env`] reads
//! both from `MEMDEX_DATABASE_URL` (else `DATABASE_URL`) and `MEMDEX_MEMCACHED`
//! (`host:port,host:port`). A value that cannot be understood is an
//! [`Error::Config`] naming it.
//!
//! ```no_run
//! use memdex::Store;
//!
//! // PostgreSQL (feature `postgres`) behind two memcached servers.
//! let store = Store::builder()
//!     .url("postgres://shop@db.internal/shop")
//!     .memcached(["cache1.internal:11211", "cache2.internal:11211"])
//!     .namespace("shop")
//!     .build()?;
//!
//! // The same, from MEMDEX_DATABASE_URL and MEMDEX_MEMCACHED.
//! let store = Store::builder().from_env().build()?;
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! A memcached server that fails or times out is marked down: reads go to the
//! database meanwhile, a background probe brings it back, and the invalidations it
//! missed are delivered before it serves again. Writes record their cache
//! invalidations in an outbox table in the same database transaction, so that a
//! process dying right after its commit still leaves no stale entry behind for long
//! ([`StoreBuilder::outbox`], [`Store::drain_outbox`]).
//!
//! # Schema ownership
//!
//! By default a store creates what it needs: memdex's outbox table when it is
//! built, and a model's table and indexes in [`Store::migrate`]. A team that owns
//! its schema takes the statements from [`ddl`] and [`outbox_ddl`] into its own
//! migrations and builds the store with
//! [`manage_schema(false)`](StoreBuilder::manage_schema): it then runs no DDL at
//! all, and `migrate` checks instead of creating. [`Store::check_schema`] names
//! what is missing either way, as [`Error::SchemaDrift`].
//!
//! ```
//! # use memdex::{Model, Store};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! # #[memdex(table = "customer")]
//! # pub struct Customer {
//! #     #[memdex(key)] pub id: i64,
//! #     #[memdex(index(prefix = 1))] pub first_name: String,
//! # }
//! use memdex::{Dialect, Error};
//!
//! let statements = memdex::ddl::<Customer>(Dialect::Postgres);
//! assert!(statements[0].starts_with(r#"CREATE TABLE IF NOT EXISTS "customer""#));
//!
//! let store = Store::builder().sqlite_in_memory().build()?;
//! let err = store.check_schema::<Customer>().unwrap_err();
//! assert!(matches!(err, Error::SchemaDrift { ref problems, .. } if problems == &["the table does not exist"]));
//! store.migrate::<Customer>()?;
//! store.check_schema::<Customer>()?;
//! # Ok::<(), memdex::Error>(())
//! ```
//!
//! # Async
//!
//! With the `tokio` feature, `StoreBuilder::build_async` gives an `AsyncStore`:
//! the same engine driven over `tokio::net`, `tokio-postgres` with deadpool, and
//! tokio's blocking pool for SQLite and MariaDB, so that nothing blocks a worker.
//! It is `Clone + Send + Sync + 'static` (share it as an axum state), its futures
//! are `Send`, and the queries are the same values, awaited:
//! `Select::fetch_async`, `count_async`, `View::fetch_async`, `Scan::fetch_async`.
//! Writes that belong together go through `AsyncStore::begin` and
//! `AsyncTransaction::commit`.
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # fn main() -> Result<(), memdex::Error> {
//! use memdex::{AsyncStore, Model, Store, select};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
//! #[memdex(table = "customer")]
//! pub struct Customer {
//!     #[memdex(key)]
//!     pub id: i64,
//!     #[memdex(index(prefix = 1))]
//!     pub first_name: String,
//! }
//!
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
//! # runtime.block_on(async {
//! let store: AsyncStore = Store::builder().sqlite_in_memory().in_process_cache().build_async().await?;
//! store.migrate::<Customer>().await?;
//! store.insert(&Customer { id: 1, first_name: "mira".into() }).await?;
//!
//! let mut tx = store.begin().await?;
//! tx.insert(&Customer { id: 2, first_name: "mikkel".into() }).await?;
//! tx.insert(&Customer { id: 3, first_name: "nora".into() }).await?;
//! tx.commit().await?;
//!
//! let m_names = select!(Customer, |c| c.first_name.starts_with("m"));
//! assert_eq!(m_names.fetch_async(&store).await?.len(), 2);
//! assert_eq!(m_names.count_async(&store).await?, 2);
//! let text = store.recall_text::<Customer>("lambda c: c.first_name.startswith('n')", &[]).await?;
//! assert_eq!(text[0].id, 3);
//! # Ok(())
//! # })
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! A future dropped at any await point leaves no connection out of step and loses
//! no invalidation. The blocking [`Store`] called from inside a tokio task works
//! too, at the price of blocking that worker.
//!
//! # Cargo features
//!
//! | feature | what it adds |
//! |---|---|
//! | `sqlite` (default) | SQLite through `rusqlite`, with SQLite bundled: [`StoreBuilder::sqlite`], [`StoreBuilder::sqlite_in_memory`], `sqlite://` URLs |
//! | `postgres` | PostgreSQL through `postgres` (blocking) and, with `tokio`, `tokio-postgres` with a deadpool pool: [`StoreBuilder::postgres`], `postgres://` URLs |
//! | `mysql` | MySQL/MariaDB through the `mysql` crate: [`StoreBuilder::mysql`], `mysql://` URLs |
//! | `tokio` | `AsyncStore`, `AsyncTransaction`, `build_async` and the `*_async` query methods |
//! | `metrics` | counters, a latency histogram and pool, cache and near-cache gauges on the `metrics` facade |
//! | `tls` | TLS through rustls (ring; never OpenSSL): PostgreSQL's `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`, libpq's meanings) and `sslrootcert` in the URL or parameters, on both drivers; memcached servers written `tls://host:port` or configured with [`StoreBuilder::memcached_tls`] (`MEMDEX_MEMCACHED_TLS_CA=path` from the environment); with `mysql`, the `mysql` crate's rustls, so `mysql://…?root_cert_path=/path/ca.pem` connects over TLS verified against that CA |
//! | `chrono` | `chrono::DateTime<Utc>` fields and parameters (instants) |
//! | `time` | `time::OffsetDateTime` fields and parameters (instants) |
//! | `uuid` | `uuid::Uuid` fields and parameters |
//! | `json` | `serde_json::Value` fields (stored, never queried) and the `memdex::json` serde adapter |
//!
//! `Vec<u8>` fields need no feature: they convert without any other crate. The type
//! features only add conversions; with one off, nothing of its crate is compiled.
//!
//! A backend whose feature is not enabled is an [`Error::Config`] naming the
//! feature when the store is built; so is a PostgreSQL URL asking for TLS
//! (`sslmode=require` or stronger) or a `tls://` memcached server in a build
//! without `tls` (never a silent plaintext connection). `--no-default-features --features postgres`
//! compiles no SQLite.
//!
//! # Where to read next
//!
//! In the repository (paths from its root):
//!
//! * `README.md` — set-up, the test command, deploying.
//! * `ARCHITECTURE.md` — the crates, the sans-I/O core and its two drivers, the
//!   cache formats (node entries with versions, shape-tagged objects, the near
//!   cache), and where each race rule lives.
//! * `RELIABILITY.md` — what is tested and what it found; `BENCHMARKS.md` — the
//!   figures.
//! * `examples/examples/shop.rs` (`cargo run --example shop`) — every feature in one
//!   program, with the cache conversation printed; `examples/examples/linq.rs` — the
//!   LINQ post's queries in both forms, with their SQL, keys and conversation;
//!   `examples/examples/console.rs` — text queries typed at a prompt, with EXPLAIN.
//! * The macros' own documentation — [`Model`](macro@Model), [`select!`], [`scan!`],
//!   [`view!`] — for every detail of the attributes and the language.

#![warn(missing_docs)]

// The module graph is one-way, bottom-up (ARCHITECTURE.md, "Code map"):
// error, stats, trace, codec, settings, model, prepared → cache, db → outbox →
// engine (the sans-I/O core), ddl → exec (the drivers) → handle → query → store.
#[cfg(feature = "tokio")]
mod async_store;
pub mod cache;
mod capture;
mod codec;
mod config;
pub mod db;
mod ddl;
mod engine;
mod enum_text;
mod error;
mod exec;
mod handle;
#[cfg(feature = "json")]
pub mod json;
mod model;
mod near;
mod outbox;
mod prepared;
mod query;
mod registry;
mod settings;
mod statements;
mod stats;
mod store;
#[cfg(feature = "tls")]
mod tls;
mod trace;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[cfg(feature = "tokio")]
pub use async_store::AsyncTransaction;
pub use ddl::{capture_ddl, ddl, outbox_ddl};
pub use error::Error;
#[cfg(feature = "tokio")]
pub use handle::AsyncStore;
pub use handle::Store;
pub use memdex_grammar::explain::Explain;
pub use memdex_grammar::{Dialect, Schema, Type, Value};
pub use memdex_macros::{Model, scan, select, view};
pub use model::{Col, Model};
pub use query::{AggregateOutput, Scan, Select, View};
pub use stats::Stats;
pub use store::{StoreBuilder, Transaction};

/// The query language itself (IR, parser, planner, SQL emitter), for tools.
pub use memdex_grammar as grammar;
