//! Pass cases for the macros: every row of the language table compiles with
//! `select!`, `scan!` and `view!`, and lowers to the IR the text form gives.

use memdex::__private::LoweredQuery;
use memdex::grammar::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, Lambda, StrOp};
use memdex::{Model, Value, scan, select, view};
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
#[memdex(index(cart_id, status))]
pub struct Item {
    #[memdex(key)]
    pub id: i64,
    #[memdex(index)]
    pub category_id: i64,
    #[memdex(index(prefix = 1))]
    pub first_name: String,
    pub price: f64,
    pub deleted_at: Option<i64>,
    pub cart_id: i32,
    pub status: String,
    pub flag: bool,
    #[memdex(column = "note_text")]
    pub note: Option<String>,
}

#[test]
fn derive_schema() {
    let s = Item::schema();
    assert_eq!(s.table, "item");
    assert_eq!(Item::INDEX_LIST, s.describe_indexes());
    assert_eq!(Item::INDEX_LIST, "id (key), (cart_id, status), category_id, first_name (prefix 1)");
    assert_eq!(s.columns[8].name, "note_text");
    assert_eq!(Item::price().field(), "price");
}
