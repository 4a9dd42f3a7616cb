//! Paging on an ordered index (issue 16; DESIGN.md "Index planning"): which query
//! may read only its page's objects, and which ids of an ordered node make the page.
//!
//! An ordered node keeps each verified entry with its row's order value
//! (`codec`). A write appends an entry for its row to every node the row was in and
//! is in, so an id whose entries are all verified and name one version is at that
//! version now, in this node, with that order value (the near cache rests on the same
//! rule, K12). When every id of the node is like that, the node alone orders the
//! node's rows, and the page is the slice of that order: only its objects are read.
//! An id with an appended entry (a write since the node was verified), an unknown
//! version (an update in flight at the fill) or a deleted one makes the node's order
//! uncertain: the fetch then reads every object, as an unordered scan does, and its
//! write-back leaves the node verified, with every order value, for the next read.
//!
//! Only a query whose one disjunct is answered by one node exactly (no residual
//! filter) pages this way: a residual could reject rows before the page, which only
//! their objects can tell.

use std::cmp::Ordering;

use memdex_grammar::Value;
use memdex_grammar::plan::{Access, DisjunctPlan, Plan};
use memdex_grammar::sql::OrderBy;

use super::database::Page;
use crate::codec::{Entry, OrderedNode};
use crate::model::Model;

/// The slice of an ordered node a page is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Window {
    /// Descending order values first (ties still by ascending key).
    pub(crate) descending: bool,
    pub(crate) offset: usize,
    pub(crate) limit: usize,
    /// Keyset paging: only rows after this (order value, key) in the page's order.
    pub(crate) after: Option<(Value, Value)>,
}

/// The plan to run for `plan` when `page` can be read from an ordered index: its one
/// disjunct moved onto the ordered index (of the same columns) whose order column
/// the page orders by, and the window. `None`: the query pages in memory.
pub(crate) fn ordered_plan<T: Model>(plan: &Plan, page: &Page<'_>) -> Option<(Plan, Window)> {
    let schema = T::schema();
    let [OrderBy { column, desc }] = page.order else { return None };
    let [disjunct] = plan.disjuncts.as_slice() else { return None };
    let Access::Index { index, lookups } = &disjunct.access else { return None };
    if !disjunct.residual.is_empty() || page.limit.is_none() {
        return None;
    }
    let columns = &schema.indexes.get(*index)?.columns;
    let ordered = schema.indexes.iter().position(|ix| {
        ix.prefix.is_none() && ix.columns == *columns && ix.order.is_some_and(|o| o.column == *column)
    })?;
    let access = Access::Index { index: ordered, lookups: lookups.clone() };
    let plan = Plan { disjuncts: vec![DisjunctPlan { access, ..disjunct.clone() }] };
    let key = schema.key;
    let after = page.after.map(|values| (values.get(*column).cloned(), values.get(key).cloned()));
    let after = match after {
        Some((Some(order), Some(key))) => Some((order, key)),
        Some(_) => return None,
        None => None,
    };
    let window = Window {
        descending: *desc,
        offset: usize::try_from(page.offset).unwrap_or(usize::MAX),
        limit: page.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)),
        after,
    };
    Some((plan, window))
}

impl Window {
    /// `(order value, key)` pairs in the page's order: order values (reversed when
    /// descending), then keys ascending — as `database::paged` orders rows.
    pub(crate) fn compare(&self, a: (&Value, &Value), b: (&Value, &Value)) -> Ordering {
        let by_value = a.0.order(b.0);
        let by_value = if self.descending { by_value.reverse() } else { by_value };
        by_value.then_with(|| a.1.order(b.1))
    }

    /// The page of `node` (sorted by value, then key, as its writer left it), each
    /// entry with its order value, in page order. Ascending pages are slices of the
    /// node; descending ones are slices of it read backwards, taken with the whole
    /// runs of equal values at their ends and re-sorted, since ties still go by
    /// ascending key. Keyset paging finds its start by binary search. `None` when
    /// an entry is damaged or out of order (the caller reads the node whole).
    pub(crate) fn page_from(&self, node: &OrderedNode<'_>) -> Option<Vec<(Value, Entry)>> {
        let n = node.len();
        let order_at = |at: usize| node.order_at(at).unwrap_or(Value::Null);
        if !self.descending {
            let start = match &self.after {
                Some((value, key)) => partition(n, |at| {
                    node.get(at).is_some_and(|(v, (id, _))| self.compare((&v, &id), (value, key)).is_le())
                }),
                None => 0,
            };
            let from = start.saturating_add(self.offset).min(n);
            let to = from.saturating_add(self.limit).min(n);
            return self.decoded(node, from, to);
        }
        // Descending: first the rows of the `after` value's run with a greater key
        // (they follow `after` in this order), then the rows of smaller values.
        let (mut taken, below) = match &self.after {
            Some((value, key)) => {
                let low = partition(n, |at| order_at(at).order(value).is_lt());
                let high = partition(n, |at| order_at(at).order(value).is_le());
                let first = low
                    + partition(high - low, |i| node.get(low + i).is_some_and(|(_, (id, _))| id.order(key).is_le()));
                let run = self.decoded(node, first, high)?;
                (run, low)
            }
            None => (Vec::new(), n),
        };
        let skip = self.offset.min(taken.len());
        taken.drain(..skip);
        taken.truncate(self.limit);
        let offset = self.offset - skip;
        let wanted = self.limit - taken.len();
        taken.extend(self.backwards(node, below, offset, wanted)?);
        Some(taken)
    }

    /// Entries `offset..offset + wanted` of the first `len` entries of `node` in
    /// descending order (ties by ascending key).
    fn backwards(
        &self,
        node: &OrderedNode<'_>,
        len: usize,
        offset: usize,
        wanted: usize,
    ) -> Option<Vec<(Value, Entry)>> {
        if wanted == 0 || offset >= len {
            return Some(Vec::new());
        }
        let order_at = |at: usize| node.order_at(at);
        let mut high = len - offset;
        let mut low = high.saturating_sub(wanted);
        // Whole runs of equal values at both ends: their keys order them.
        while low > 0 && order_at(low - 1)?.order(&order_at(low)?).is_eq() {
            low -= 1;
        }
        while high < len && order_at(high)?.order(&order_at(high - 1)?).is_eq() {
            high += 1;
        }
        let mut slice = self.decoded(node, low, high)?;
        slice.sort_by(|(a, (ak, _)), (b, (bk, _))| self.compare((a, ak), (b, bk)));
        // The first of `slice` has rank `len - high` in descending order.
        let skip = offset - (len - high);
        Some(slice.into_iter().skip(skip).take(wanted).collect())
    }

    /// Entries `from..to` of `node`, checked to be in the node's order.
    fn decoded(&self, node: &OrderedNode<'_>, from: usize, to: usize) -> Option<Vec<(Value, Entry)>> {
        let entries: Vec<(Value, Entry)> = (from..to).map(|at| node.get(at)).collect::<Option<_>>()?;
        let sorted = entries.windows(2).all(|pair| {
            let ((a, (ak, _)), (b, (bk, _))) = (&pair[0], &pair[1]);
            a.order(b).then_with(|| ak.order(bk)).is_lt()
        });
        sorted.then_some(entries)
    }

    /// The positions in `entries` of the page's ids, in page order; `None` when the
    /// node cannot order itself (an entry appended, of an unknown or deleted
    /// version, without its order value, or an id listed with two versions). The
    /// definition [`Window::page_from`] is tested against: it sorts the decoded node.
    #[cfg(test)]
    pub(crate) fn page_of(&self, entries: &[Entry], orders: &[Option<Value>], verified: usize) -> Option<Vec<usize>> {
        if verified < entries.len() || orders.len() != entries.len() {
            return None;
        }
        let mut members: Vec<usize> = Vec::with_capacity(entries.len());
        for (at, ((_, etag), order)) in entries.iter().zip(orders).enumerate() {
            if *etag == crate::codec::UNKNOWN_ETAG || *etag == crate::codec::DELETED_ETAG || order.is_none() {
                return None;
            }
            members.push(at);
        }
        let entry = |at: usize| (orders[at].as_ref().unwrap_or(&Value::Null), &entries[at].0);
        members.sort_by(|&a, &b| self.compare(entry(a), entry(b)));
        // Repeats of an id sort next to each other only when they agree on the
        // order value too; one id with two versions or two values is uncertain.
        let mut unique: Vec<usize> = Vec::with_capacity(members.len());
        for at in members {
            match unique.last() {
                Some(&last) if entries[last].0 == entries[at].0 => {
                    if entries[last].1 != entries[at].1 {
                        return None;
                    }
                }
                _ => unique.push(at),
            }
        }
        if !ids_unique(entries, &unique) {
            return None;
        }
        let start = match &self.after {
            Some((value, key)) => unique.partition_point(|&at| self.compare(entry(at), (value, key)).is_le()),
            None => 0,
        };
        Some(unique.into_iter().skip(start).skip(self.offset).take(self.limit).collect())
    }
}

/// The first of `0..len` for which `before` is false (`before` holds for a prefix).
fn partition(len: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let mid = low + (high - low) / 2;
        if before(mid) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}

/// Whether no id is listed twice among `picked`: repeats of an id with different
/// order values do not sort next to each other.
#[cfg(test)]
fn ids_unique(entries: &[Entry], picked: &[usize]) -> bool {
    let mut ids: Vec<&Value> = picked.iter().map(|&at| &entries[at].0).collect();
    ids.sort_by(|a, b| a.order(b));
    ids.windows(2).all(|pair| pair[0] != pair[1])
}

#[cfg(test)]
mod tests {
    use memdex_grammar::Type;

    use super::*;
    use crate::codec;

    fn window(descending: bool, offset: usize, limit: usize) -> Window {
        Window { descending, offset, limit, after: None }
    }

    /// `node`: entries as (id, etag, order value); returns the page's ids.
    fn check(w: &Window, node: &[(i64, u64, Option<i64>)], verified: usize, expect: Option<&[i64]>) {
        let entries: Vec<Entry> = node.iter().map(|&(id, etag, _)| (Value::Int(id), etag)).collect();
        let orders: Vec<Option<Value>> = node.iter().map(|&(_, _, o)| o.map(Value::Int)).collect();
        let got = w
            .page_of(&entries, &orders, verified)
            .map(|page| page.into_iter().map(|at| entries[at].0.as_i64().unwrap_or(-1)).collect::<Vec<i64>>());
        assert_eq!(got.as_deref(), expect, "{w:?} {node:?}");
    }

    #[test]
    fn a_verified_node_orders_its_page() {
        let node = [(1, 11, Some(30)), (2, 12, Some(10)), (3, 13, Some(20)), (4, 14, Some(10)), (5, 15, Some(40))];
        check(&window(false, 0, 2), &node, 5, Some(&[2, 4]));
        check(&window(false, 2, 2), &node, 5, Some(&[3, 1]));
        check(&window(false, 4, 10), &node, 5, Some(&[5]));
        check(&window(false, 9, 10), &node, 5, Some(&[]));
        // Descending: values reversed, ties still by ascending key.
        check(&window(true, 0, 3), &node, 5, Some(&[5, 1, 3]));
        check(&window(true, 3, 3), &node, 5, Some(&[2, 4]));
        // A repeat of one version collapses.
        let repeated = [(1, 11, Some(30)), (2, 12, Some(10)), (1, 11, Some(30))];
        check(&window(false, 0, 5), &repeated, 3, Some(&[2, 1]));
        check(&window(false, 0, 5), &[], 0, Some(&[]));
    }

    #[test]
    fn keyset_paging_starts_after_the_last_row_seen() {
        let node = [(1, 11, Some(30)), (2, 12, Some(10)), (3, 13, Some(20)), (4, 14, Some(10)), (5, 15, Some(40))];
        let after = |value: i64, key: i64, descending: bool| Window {
            descending,
            offset: 0,
            limit: 2,
            after: Some((Value::Int(value), Value::Int(key))),
        };
        check(&after(10, 2, false), &node, 5, Some(&[4, 3]));
        check(&after(10, 4, false), &node, 5, Some(&[3, 1]));
        // A row since deleted (not in the node) still places the page.
        check(&after(25, 99, false), &node, 5, Some(&[1, 5]));
        check(&after(40, 5, false), &node, 5, Some(&[]));
        check(&after(30, 1, true), &node, 5, Some(&[3, 2]));
        check(&after(10, 2, true), &node, 5, Some(&[4]));
    }

    /// `page_from` (positions in the node's bytes, binary search, runs re-sorted)
    /// against `page_of` (the definition: decode everything, sort) on random nodes
    /// with many ties and NULLs, random windows in both directions, offsets past
    /// the end and `after` rows that are in the node or not.
    #[test]
    fn a_page_from_the_bytes_is_the_page_of_the_sorted_node() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n.max(1)
        };
        for case in 0..3_000 {
            let len = next(40) as usize;
            let mut ids: Vec<i64> = (0..len as i64 * 2).collect();
            let entries: Vec<Entry> = (0..len)
                .map(|_| {
                    let id = ids.swap_remove(next(ids.len() as u64) as usize);
                    (Value::Int(id - 10), 1 + id as u64)
                })
                .collect();
            // Integer values give the fixed-width layout, text ones the text layout.
            let (ty, value): (Type, fn(u64) -> Value) = if case % 2 == 0 {
                (Type::Int, |n| Value::Int(n as i64))
            } else {
                (Type::Text, |n| Value::Text(format!("v{n}")))
            };
            let orders: Vec<Option<Value>> =
                (0..len).map(|_| Some(if next(8) == 0 { Value::Null } else { value(next(6)) })).collect();
            let bytes = codec::encode_node(&entries, &orders);
            let node = codec::decode_node(&bytes, Type::Int, Some(ty)).expect("decodes");
            let ordered = codec::ordered_node(&bytes, Type::Int, ty).expect("a clean node");
            let after = match next(3) {
                0 => None,
                1 if len > 0 => {
                    let at = next(len as u64) as usize;
                    Some((node.orders[at].clone().unwrap_or(Value::Null), node.entries[at].0.clone()))
                }
                _ => Some((value(next(7)), Value::Int(next(90) as i64 - 10))),
            };
            let w = Window {
                descending: next(2) == 0,
                offset: next(len as u64 + 5) as usize,
                limit: 1 + next(12) as usize,
                after,
            };
            let expected: Vec<Entry> = w
                .page_of(&node.entries, &node.orders, node.verified)
                .expect("a verified node orders itself")
                .into_iter()
                .map(|at| node.entries[at].clone())
                .collect();
            let got: Vec<Entry> = w.page_from(&ordered).expect("reads").into_iter().map(|(_, entry)| entry).collect();
            assert_eq!(got, expected, "case {case}: {w:?} over {:?}", node.orders);
        }
    }

    #[test]
    fn an_uncertain_node_cannot_order_itself() {
        let node = [(1, 11, Some(30)), (2, 12, Some(10)), (3, 13, Some(20))];
        let w = window(false, 0, 2);
        // An append (not verified), whatever it names.
        let appended = [node[0], node[1], node[2], (2, 19, None)];
        check(&w, &appended, 3, None);
        // Verified but uncertain: an unknown or deleted version, no order value, an id
        // with two versions or two values.
        check(&w, &[node[0], (2, codec::UNKNOWN_ETAG, Some(10))], 2, None);
        check(&w, &[node[0], (2, codec::DELETED_ETAG, Some(10))], 2, None);
        // The node's own bytes say the same: no page is read from them.
        let appended_bytes = {
            let entries: Vec<Entry> = node.iter().map(|&(id, etag, _)| (Value::Int(id), etag)).collect();
            let orders: Vec<Option<Value>> = node.iter().map(|&(_, _, o)| o.map(Value::Int)).collect();
            let mut bytes = codec::encode_node(&entries, &orders);
            bytes.extend(codec::entry_record(&Value::Int(2), 19));
            bytes
        };
        assert!(codec::ordered_node(&appended_bytes, Type::Int, Type::Int).is_none());
        check(&w, &[node[0], (2, 12, None)], 2, None);
        check(&w, &[node[0], (2, 12, Some(10)), (2, 13, Some(10))], 3, None);
        check(&w, &[(2, 12, Some(10)), node[0], (2, 12, Some(50))], 3, None);
    }
}
