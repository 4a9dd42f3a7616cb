//! Shared pieces of the memdex examples: the shop's models and sample data, the
//! LINQ-post report (`cargo run --example linq`), the query console
//! (`cargo run --example console`) and the benchmark report (`cargo run --release
//! --example bench`), kept here so that their tests can call them.

pub mod bench;
pub mod console;
pub mod conversation;
pub mod linq;
pub mod load;
pub mod service;
pub mod shop_models;
pub mod table;
