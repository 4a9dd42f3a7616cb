//! Shared pieces of the memdex examples: the shop's models and sample data, and the
//! LINQ-post report (`cargo run --example linq`), kept here so that their tests can
//! call them.

pub mod conversation;
pub mod linq;
pub mod shop_models;
pub mod table;
