//! The runtime without the macros: a hand-written `Model` and text queries, over
//! SQLite in memory and the in-process cache.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::sync::OnceLock;

use memdex::__private::IndexInfo;
use memdex::{Model, Schema, Store, Type, Value};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    id: i64,
    category_id: i64,
    name: String,
}

impl Model for Item {
    type Key = i64;
    const INDEXES: &'static [IndexInfo] =
        &[IndexInfo { columns: &["id"], prefix: 0 }, IndexInfo { columns: &["category_id"], prefix: 0 }];
    const INDEX_LIST: &'static str = "id (key), category_id";

    fn schema() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            Schema::new("Item", "item")
                .column("id", Type::Int, false)
                .column("category_id", Type::Int, false)
                .column("name", Type::Text, false)
                .key("id")
                .index(&["category_id"], None)
        })
    }

    fn column_value(&self, column: usize) -> Value {
        match column {
            0 => self.id.into(),
            1 => self.category_id.into(),
            _ => self.name.clone().into(),
        }
    }

    fn from_values(values: Vec<Value>) -> Result<Self, String> {
        match values.as_slice() {
            [Value::Int(id), Value::Int(category_id), Value::Text(name)] => {
                Ok(Item { id: *id, category_id: *category_id, name: name.clone() })
            }
            other => Err(format!("unexpected row {other:?}")),
        }
    }

    fn key(&self) -> i64 {
        self.id
    }
}

fn ids(items: &[Item]) -> Vec<i64> {
    items.iter().map(|i| i.id).collect()
}

#[test]
fn text_queries_through_the_cache() {
    assert_eq!(Item::schema().describe_indexes(), Item::INDEX_LIST);
    let store = Store::builder().sqlite_in_memory().in_process_cache().near_cache_capacity(64 << 20).build().unwrap();
    store.migrate::<Item>().unwrap();
    for (id, cat) in [(1, 5), (2, 5), (3, 6), (4, 5)] {
        store.insert(&Item { id, category_id: cat, name: format!("n{id}") }).unwrap();
    }
    let q = "lambda c: c.category_id == cat and c.name != 'n2'";
    let params = [("cat", Value::from(5))];
    assert_eq!(ids(&store.recall_text::<Item>(q, &params).unwrap()), vec![1, 4]);
    let before = store.stats();
    assert_eq!(ids(&store.recall_text::<Item>(q, &params).unwrap()), vec![1, 4]);
    let after = store.stats();
    // Hot: the node in one round trip, its three objects from the near cache at the
    // versions the node names.
    assert_eq!(after.cache_round_trips - before.cache_round_trips, 1, "{after:#?}");
    assert_eq!(after.near_hits - before.near_hits, 3, "{after:#?}");
    assert_eq!(after.db_queries, before.db_queries);
    store.update(&Item { id: 4, category_id: 6, name: "n4".into() }).unwrap();
    assert_eq!(ids(&store.recall_text::<Item>(q, &params).unwrap()), vec![1]);
    assert_eq!(ids(&store.recall_text::<Item>("lambda c: c.category_id == 6", &[]).unwrap()), vec![3, 4]);
    assert!(store.stats().lazy_removals >= 1);
    store.delete::<Item>(&1).unwrap();
    assert_eq!(ids(&store.recall_text::<Item>(q, &params).unwrap()), Vec::<i64>::new());
    let err = store.recall_text::<Item>("lambda c: c.name == 'x'", &[]).unwrap_err();
    assert!(matches!(err, memdex::Error::Unindexable { .. }), "{err}");
    println!("{err}");
    let select = store.select_text::<Item>("lambda c: c.category_id in (5, 6) or c.id == 2", &[]).unwrap();
    println!("{}", select.explain(memdex::Dialect::Postgres));
    assert_eq!(select.count(&store).unwrap(), 3);
}
