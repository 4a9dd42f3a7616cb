use memdex::{Model, select};
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub customer: i64,
    #[serde(with = "memdex::json")]
    pub details: serde_json::Value,
}

fn main() {
    let wanted = serde_json::json!({"gift": true});
    let _q = select!(Order, |o| o.customer == 5 && o.details == wanted);
}
