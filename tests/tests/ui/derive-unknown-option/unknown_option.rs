use memdex::Model;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(tabel = "a")]
pub struct A {
    #[memdex(key, indx)]
    pub id: i64,
}

fn main() {}
