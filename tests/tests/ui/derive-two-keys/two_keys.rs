use memdex::Model;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct A {
    #[memdex(key)]
    pub id: i64,
    #[memdex(key)]
    pub other: i64,
}

fn main() {}
