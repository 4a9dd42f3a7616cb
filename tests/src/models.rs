//! Models shared by the integration tests. A test whose point is a model's shape (a
//! renamed column, an optional index, a composite key, two versions of one table)
//! declares its own next to the test; the rest use these.

use memdex::Model;
use serde::{Deserialize, Serialize};

/// The smallest model that has every moving part of the cache: a key, one indexed
/// column (so rows live in index nodes and move between them) and one plain column
/// (so an edit can leave a row in its node).
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
pub struct Item {
    /// The key.
    #[memdex(key)]
    pub id: i64,
    /// The indexed column: `category_id == c` is served from one index node.
    #[memdex(index)]
    pub category_id: i64,
    /// A column no index covers.
    pub name: String,
}

/// Item `id` in category `category_id`, named after its id.
pub fn item(id: i64, category_id: i64) -> Item {
    Item { id, category_id, name: format!("item {id}") }
}

/// A line of a cart on an ordered index (issue 16): the node of a cart keeps each
/// line's `position`, so a page of `order_by(position)` reads only its own lines.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "cart_line")]
#[memdex(index(cart_id, order_by = position))]
pub struct CartLine {
    /// The key.
    #[memdex(key)]
    pub id: i64,
    /// The cart: `cart_id == c` is served from the cart's one ordered node.
    pub cart_id: i64,
    /// The order the node keeps.
    pub position: i64,
    /// A column no index covers.
    pub label: String,
    /// Another, for residual filters (`qty > 1`).
    pub qty: i64,
}

/// Line `id` of cart `cart_id` at `position`, labelled after its id, quantity 1.
pub fn line(id: i64, cart_id: i64, position: i64) -> CartLine {
    CartLine { id, cart_id, position, label: format!("line {id}"), qty: 1 }
}
