use memdex::Model;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(index(id, categry))]
pub struct A {
    #[memdex(key)]
    pub id: i64,
    pub category: i64,
}

fn main() {}
