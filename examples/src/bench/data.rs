//! The benchmark's rows: shop items of about 200 bytes each (postcard-encoded),
//! grouped into categories whose sizes the configuration chooses.

use std::collections::BTreeMap;

/// An item's fields as the baselines store them. The memdex model
/// (`super::memdex_side::Item`) has the same fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub id: i64,
    pub category_id: i64,
    pub name: String,
    pub price: f64,
    pub deleted_at: Option<i64>,
    pub description: String,
}

/// Text that makes an encoded item about 200 bytes, varied per item so that no
/// layer can profit from identical values.
fn description(id: i64) -> String {
    let mut s = format!("item {id}: ");
    let words = ["sturdy", "blue", "compact", "steel", "organic", "vintage", "quiet", "portable"];
    let mut i = id as usize;
    while s.len() < 160 {
        s.push_str(words[i % words.len()]);
        s.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    s.truncate(160);
    s
}

pub fn row(id: i64, category_id: i64) -> Row {
    Row {
        id,
        category_id,
        name: format!("item-{id:06}"),
        price: 1.0 + (id % 997) as f64 * 0.25,
        deleted_at: None,
        description: description(id),
    }
}

/// Rows by category: `layout` lists `(category, how many items)`. Ids run from 1 in
/// layout order.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub rows: Vec<Row>,
    pub by_category: BTreeMap<i64, Vec<i64>>,
}

impl Dataset {
    pub fn new(layout: &[(i64, usize)]) -> Dataset {
        let mut data = Dataset::default();
        let mut id = 0;
        for &(category, n) in layout {
            for _ in 0..n {
                id += 1;
                data.rows.push(row(id, category));
                data.by_category.entry(category).or_default().push(id);
            }
        }
        data
    }

    pub fn ids(&self, category: i64) -> &[i64] {
        self.by_category.get(&category).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_assigns_ids_in_order() {
        let d = Dataset::new(&[(7, 2), (3, 1)]);
        assert_eq!(d.ids(7), &[1, 2]);
        assert_eq!(d.ids(3), &[3]);
        assert_eq!(d.rows.len(), 3);
        assert!(d.ids(99).is_empty());
    }

    #[test]
    fn descriptions_are_160_bytes_and_vary() {
        assert_eq!(description(1).len(), 160);
        assert_ne!(description(1), description(2));
    }
}
