use memdex::Model;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct A {
    #[memdex(key)]
    pub id: i64,
    pub tags: Vec<String>,
    pub big: u64,
}

fn main() {}
