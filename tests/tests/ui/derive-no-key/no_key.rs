use memdex::Model;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct A {
    pub id: i64,
}

fn main() {}
