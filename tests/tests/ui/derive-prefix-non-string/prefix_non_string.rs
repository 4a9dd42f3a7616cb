use memdex::Model;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct A {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index(prefix = 2))]
    pub n: i64,
    #[memdex(index(prefix = 0))]
    pub s: String,
}

fn main() {}
