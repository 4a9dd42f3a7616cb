//! Shared pieces of the memdex examples: the shop's models and sample data, kept
//! here so that every example and its tests talk about the same tables.

pub mod shop_models;
