//! memdex: queries written once, as Rust closures checked by rustc or as Python
//! lambdas parsed at run time, answered as cache-aware index scans over memcached
//! (or an in-process cache) in front of SQLite, PostgreSQL or (feature `mysql`)
//! MySQL/MariaDB.
//!
//! ```ignore
//! let m_names = select!(Customer, |c| c.first_name.starts_with("m")).fetch(&store)?;
//! ```
//!
//! See DESIGN.md and ARCHITECTURE.md at the repository root for the model: objects
//! cached by key, index nodes listing ids per equality criterion, "add eagerly,
//! remove lazily", leases and CAS for every race.

// The module graph is one-way, bottom-up (ARCHITECTURE.md, "Code map"):
// error, stats, trace, codec, settings, model, prepared → cache, db → outbox →
// engine (the sans-I/O core), ddl → exec (the drivers) → handle → query → store.
#[cfg(feature = "tokio")]
mod async_store;
pub mod cache;
mod codec;
mod config;
pub mod db;
mod ddl;
mod engine;
mod error;
mod exec;
mod handle;
mod model;
mod near;
mod outbox;
mod prepared;
mod query;
mod settings;
mod stats;
mod store;
mod trace;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[cfg(feature = "tokio")]
pub use async_store::AsyncTransaction;
pub use ddl::{ddl, outbox_ddl};
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
