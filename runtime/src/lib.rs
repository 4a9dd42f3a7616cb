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

pub mod cache;
mod codec;
pub mod db;
mod error;
mod exec;
mod model;
mod outbox;
mod query;
mod stats;
mod store;
mod trace;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use error::Error;
pub use memdex_grammar::explain::Explain;
pub use memdex_grammar::{Dialect, Schema, Type, Value};
pub use memdex_macros::{Model, scan, select, view};
pub use model::{Col, Model};
pub use query::{AggregateOutput, Scan, Select, View};
pub use stats::Stats;
pub use store::{Store, StoreBuilder, Transaction};

/// The query language itself (IR, parser, planner, SQL emitter), for tools.
pub use memdex_grammar as grammar;
