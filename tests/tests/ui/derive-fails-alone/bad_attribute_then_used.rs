// A model with a mistake in one attribute, then used the way an application uses
// it. The attribute's error must be the only one: the derive still emits an
// `impl Model` and the column handles, so no `select!`, `Item::price()`, write or
// `view!` below adds an error of its own.
use memdex::{Error, Model, Store, scan, select, view};
use serde::{Deserialize, Serialize};

#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
pub struct Item {
    #[memdex(key)]
    pub id: i64,
    #[memdex(indx)]
    pub category_id: i64,
    pub price: f64,
    pub deleted_at: Option<i64>,
}

fn use_the_model(store: &Store, item: &Item) -> Result<(), Error> {
    let cat = 5_i64;
    store.migrate::<Item>()?;
    store.insert(item)?;
    let page: Vec<Item> = select!(Item, |c| c.category_id == cat && c.deleted_at.is_none())
        .order_by_desc(Item::price())
        .limit(10)
        .fetch(store)?;
    // Unindexable even on a correct model: the fallback reports nothing more.
    let dear: u64 = select!(Item, |c| c.price > 10.0).count(store)?;
    let cheap: Vec<Item> = scan!(Item, |c| c.price < 1.0).fetch(store)?;
    let average: Option<f64> = view!(Item, |c| c.category_id == cat, |c| avg(c.price)).fetch(store)?;
    let _ = (page, dear, cheap, average, Item::id(), Item::schema());
    store.delete::<Item>(&item.id)
}

fn main() {
    let _ = use_the_model;
}
