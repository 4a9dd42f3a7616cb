use memdex::Model;
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    #[memdex(key)]
    pub id: i64,
    pub details: Option<serde_json::Value>,
}

fn main() {}
