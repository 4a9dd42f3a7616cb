use memdex::{Model, select};
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(index(cart_id, status))]
pub struct Item {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub category_id: i64,
    #[memdex(index(prefix = 2))]
    pub first_name: String,
    pub price: f64,
    pub cart_id: i64,
    pub status: String,
    pub deleted_at: Option<i64>,
}

fn main() {
    let cat = 5_i64;
    let _ = cat;
    let _q = select!(Item, |c| if c.id == 1 { true } else { c.category_id == 2 });
}
