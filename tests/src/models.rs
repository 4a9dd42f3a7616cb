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
