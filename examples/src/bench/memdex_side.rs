//! memdex under test (placeholder until the runtime lands on main).

use super::data::Row;
use super::offload::Strategy;
use super::timing::{Budget, Summary};

const PENDING: &str = "the memdex runtime is not merged yet";

#[derive(Clone, Debug)]
pub enum DbTarget {
    Postgres(String),
    SqliteInMemory,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub cache_round_trips: u64,
    pub db_queries: u64,
}

#[derive(Debug)]
pub struct Bench;

#[derive(Debug)]
pub struct AnyOf;

pub fn open(_db: &DbTarget, _memcached: &[String]) -> Result<Bench, String> {
    Err(PENDING.into())
}

impl Bench {
    pub fn load(&self, _rows: &[Row]) -> Result<(), String> {
        Err(PENDING.into())
    }
    pub fn hot(&self, _category: i64) -> Result<usize, String> {
        Err(PENDING.into())
    }
    pub fn prepare_any_of(&self, _categories: &[i64]) -> Result<AnyOf, String> {
        Err(PENDING.into())
    }
    pub fn any_of(&self, _q: &AnyOf) -> Result<usize, String> {
        Err(PENDING.into())
    }
    pub fn counters(&self) -> Counters {
        Counters::default()
    }
    pub fn update_price(&self, _row: &Row) -> Result<(), String> {
        Err(PENDING.into())
    }
    pub fn cart_node_keys(&self, _category: i64, _items: u64) -> Result<usize, String> {
        Err(PENDING.into())
    }
    pub fn describe(&self) -> String {
        String::new()
    }
}

pub fn keys(_category: i64, _ids: &[i64]) -> (Vec<String>, Vec<String>) {
    (Vec::new(), Vec::new())
}

pub fn planning(_budget: Budget) -> Result<Summary, String> {
    Err(PENDING.into())
}

pub fn macro_overhead(_budget: Budget) -> Result<(Summary, Summary), String> {
    Err(PENDING.into())
}

pub fn offload_strategy(_rows: &[(i64, i64, f64)]) -> Result<Box<dyn Strategy>, String> {
    Err(PENDING.into())
}
