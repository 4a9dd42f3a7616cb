//! Writes made outside memdex (`StoreBuilder::capture_outside_writes`): a `psql`
//! session, another service, a data migration. The cache never hears of them by
//! itself, so with capture on `migrate` installs triggers on the model's table
//! (`memdex_grammar::capture`) that record each row such a write touches, before
//! and after, in `memdex_changes`, and every process's drains apply them: one
//! select of the oldest changes, one lookup of the index registry, ONE cache batch
//! deleting the keys they name, one delete of the applied changes.
//!
//! The keys a change names: the row's object, before and after (its key may have
//! changed), and the node of every registered index on the table that each image
//! belongs to. Deleting a key is always safe (fills take their lease before their
//! database read, see `crate::outbox`), and a deleted node or object is refilled
//! from the database, which holds the write. So a reader that starts after the
//! drain that applied a change has finished sees the write — the bound is the
//! drain interval plus one drain, as long as fewer than [`APPLY_BATCH`] changes
//! wait at once (a longer queue takes a drain per batch).
//!
//! memdex's own writes are not captured: the triggers skip the sessions memdex
//! marks (`memdex_grammar::capture::SessionMark`), since memdex keeps the cache
//! right for those itself and capturing them would only empty the cache behind
//! every write.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memdex_grammar::capture::Shape;
use memdex_grammar::keys::{KeySpace, RegisteredIndex, unescape_text};
use memdex_grammar::plan::node_values;
use memdex_grammar::sql::{self, OrderBy, SelectSpec, SqlQuery};
use memdex_grammar::{Dialect, Schema, Type, Value};

use crate::db::DbError;
use crate::settings::Settings;

const TABLE: &str = "memdex_changes";

/// Changes one drain applies at most; the next drain takes the rest.
pub(crate) const APPLY_BATCH: u64 = 500;

/// The types of a changes row, in column order.
pub(crate) const ROW_TYPES: &[Type] = &[Type::Int, Type::Text, Type::Text, Type::Text, Type::Text];

/// The table of captured changes as a schema (its key numbers the rows itself).
pub(crate) fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::new("MemdexChanges", TABLE)
            .column("id", Type::Int, false)
            // The table's name as keys escape it (`keys::escape_text`): plain ASCII.
            .column("table_name", Type::Text, false)
            // `capture::Shape::encode`: the captured columns and their types.
            .column("shape", Type::Text, false)
            // JSON arrays of the captured columns, before and after the write.
            .column("old_image", Type::Text, true)
            .column("new_image", Type::Text, true)
            .key("id")
    })
}

/// The statements that create the changes table, if missing.
pub(crate) fn create_statements(dialect: Dialect) -> Vec<String> {
    sql::create_changes_table(dialect, schema())
}

/// The statements that install `model`'s capture triggers (in place of its own
/// earlier ones; run them in one transaction).
pub(crate) fn trigger_statements(dialect: Dialect, model: &Schema) -> Vec<String> {
    sql::capture_triggers(dialect, model, schema())
}

/// The installation of a model's capture triggers, as the statements of one
/// transaction: first the locks of an index registration (on PostgreSQL they make
/// installers, like registrations, run one at a time, so that two processes never
/// replace the same trigger at once), then the changes table if missing, then the
/// triggers.
#[derive(Debug)]
pub(crate) struct Install {
    statements: Vec<SqlQuery>,
}

impl Install {
    pub(crate) fn new(dialect: Dialect, model: &Schema, registry: &Schema) -> Install {
        let mut statements = sql::lock_for_registration(dialect, model, registry);
        let ddl = create_statements(dialect).into_iter().chain(trigger_statements(dialect, model));
        statements.extend(ddl.map(|text| SqlQuery { text, params: Vec::new() }));
        Install { statements }
    }

    pub(crate) fn statements(&self) -> &[SqlQuery] {
        &self.statements
    }
}

/// When this process applies captured changes next.
#[derive(Debug)]
pub(crate) struct Capture {
    /// When the store was built: `next_ms` counts from it.
    start: Instant,
    next_ms: AtomicU64,
    interval: Duration,
}

impl Capture {
    /// `None` when the store does not capture outside writes.
    pub(crate) fn new(settings: &Settings) -> Option<Capture> {
        settings.capture_outside_writes.then(|| Capture {
            start: Instant::now(),
            next_ms: AtomicU64::new(0),
            interval: settings.outbox_interval,
        })
    }

    /// Whether a drain of the changes is due; if so, the next one is due an
    /// interval later (one caller of many takes it).
    pub(crate) fn take_due(&self) -> bool {
        let now = self.start.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(next, now + self.interval.as_millis() as u64, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The oldest captured changes, at most [`APPLY_BATCH`].
pub(crate) fn oldest_query(dialect: Dialect) -> Result<SqlQuery, DbError> {
    let order = [OrderBy { column: 0, desc: false }];
    let spec = SelectSpec { order: &order, limit: Some(APPLY_BATCH), ..SelectSpec::default() };
    let no_params: Vec<(String, Value)> = Vec::new();
    sql::select(dialect, schema(), spec, &no_params).map_err(|e| DbError::query(e.to_string()))
}

/// Deletes the applied changes.
pub(crate) fn delete_ids(dialect: Dialect, ids: &[i64]) -> Result<SqlQuery, DbError> {
    let keys: Vec<Value> = ids.iter().map(|&i| Value::Int(i)).collect();
    sql::delete_keys(dialect, schema(), &keys).map_err(|e| DbError::query(e.to_string()))
}

/// One captured change: a row a write outside memdex touched.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Change {
    pub(crate) id: i64,
    /// The table's name (unescaped).
    pub(crate) table: String,
    /// The rebuilt schema of the captured columns (`Shape::schema`).
    schema: Schema,
    /// The row before and after the write, whichever it has.
    images: Vec<Image>,
}

/// One captured image: the values of the shape's columns.
#[derive(Clone, Debug, PartialEq)]
struct Image {
    values: Vec<Value>,
    /// The columns whose float came as decimal text (SQLite's), within
    /// [`FLOAT_SLACK`] units in the last place of the stored double rather than
    /// exact.
    approximate: Vec<usize>,
}

/// How many doubles either side of a float read as decimal text a change's nodes
/// are spelled for. SQLite's `printf('%!.26e')` was measured over 300,000 random
/// doubles (all exponents) to land at most 1 unit in the last place away (about a
/// fifth land 1 away); the slack is twice that.
const FLOAT_SLACK: i64 = 2;

/// The changes of an [`oldest_query`]'s rows, and the ids of rows that do not
/// parse (written by something else, or damaged): those name no key, so the drain
/// deletes them with a warning rather than read them again forever.
pub(crate) fn changes(rows: &[Vec<Value>]) -> (Vec<Change>, Vec<i64>) {
    let mut changes = Vec::new();
    let mut unreadable = Vec::new();
    for row in rows {
        let Some(Value::Int(id)) = row.first() else { continue };
        match change(*id, row) {
            Some(change) => changes.push(change),
            None => unreadable.push(*id),
        }
    }
    (changes, unreadable)
}

fn change(id: i64, row: &[Value]) -> Option<Change> {
    let (Some(Value::Text(table)), Some(Value::Text(shape))) = (row.get(1), row.get(2)) else { return None };
    let table = unescape_text(table)?;
    let shape = Shape::decode(shape)?;
    let mut images = Vec::new();
    for image in [row.get(3), row.get(4)] {
        match image {
            Some(Value::Text(text)) => images.push(parse_image(&shape, text)?),
            Some(Value::Null) | None => {}
            Some(_) => return None,
        }
    }
    Some(Change { id, schema: shape.schema(&table), table, images })
}

/// The values of an image, typed by the shape; `None` if the text is no JSON
/// array of as many values of those types.
fn parse_image(shape: &Shape, text: &str) -> Option<Image> {
    let items: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    if items.len() != shape.columns.len() {
        return None;
    }
    let approximate = (shape.columns.iter().zip(&items).enumerate())
        .filter(|(_, ((_, ty), item))| *ty == Type::Float && item.is_string())
        .map(|(c, _)| c)
        .collect();
    let values = shape.columns.iter().zip(items).map(|((_, ty), item)| typed(*ty, item)).collect::<Option<_>>()?;
    Some(Image { values, approximate })
}

impl Image {
    /// Every row this image may stand for: itself, and for each approximate float
    /// the doubles within [`FLOAT_SLACK`] of it.
    fn variants(&self) -> Vec<Vec<Value>> {
        let mut rows = vec![self.values.clone()];
        for &c in &self.approximate {
            let Some(Value::Float(x)) = self.values.get(c) else { continue };
            rows = rows
                .into_iter()
                .flat_map(|row| {
                    nearby(*x).map(move |near| {
                        let mut row = row.clone();
                        row[c] = Value::Float(near);
                        row
                    })
                })
                .collect();
        }
        rows
    }
}

/// The finite doubles within [`FLOAT_SLACK`] units in the last place of `x`
/// (`x` itself when it is not finite), by stepping through the doubles' bit
/// patterns in order.
fn nearby(x: f64) -> impl Iterator<Item = f64> {
    // A monotone map of the doubles onto the integers (both zeros to 0).
    let ordered = |v: f64| {
        let bits = v.to_bits() as i64;
        if bits < 0 { i64::MIN - bits } else { bits }
    };
    let double = |k: i64| f64::from_bits((if k < 0 { i64::MIN - k } else { k }) as u64);
    let (center, slack) = if x.is_finite() { (ordered(x), FLOAT_SLACK) } else { (0, 0) };
    (-slack..=slack).filter_map(move |d| {
        let near = if x.is_finite() { double(center.saturating_add(d)) } else { x };
        (near.is_finite() || !x.is_finite()).then_some(near)
    })
}

/// One captured value as the type the shape names (see `SqlDialect::image_value`
/// for how each dialect writes it).
fn typed(ty: Type, item: serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match (ty, item) {
        (_, J::Null) => Value::Null,
        (Type::Int, J::Number(n)) => Value::Int(n.as_i64()?),
        (Type::Timestamp, J::Number(n)) => Value::Timestamp(n.as_i64()?),
        (Type::Float, J::Number(n)) => Value::Float(n.as_f64()?),
        (Type::Float, J::String(s)) => Value::Float(s.parse().ok()?),
        (Type::Bool, J::Bool(b)) => Value::Bool(b),
        (Type::Bool, J::Number(n)) => Value::Bool(n.as_i64()? != 0),
        (Type::Text | Type::Json, J::String(s)) => Value::Text(s),
        (Type::Bytes, J::String(s)) => Value::Bytes(hex(&s)?),
        (Type::Uuid, J::String(s)) => Value::Uuid(hex(&s.replace('-', ""))?.try_into().ok()?),
        _ => return None,
    })
}

/// Hex digits (either case) as bytes.
fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

impl Change {
    /// The cache keys this change makes stale: the row's objects before and after,
    /// and the nodes its images belong to in each of the `registered` indexes of its
    /// table whose columns were captured.
    pub(crate) fn keys(&self, settings: &Settings, registered: &[(String, RegisteredIndex)], out: &mut Vec<String>) {
        let keyspace = KeySpace::new(&settings.namespace, &self.schema, settings.generation);
        let mut push = |key: String| {
            if !out.contains(&key) {
                out.push(key);
            }
        };
        for image in &self.images {
            push(keyspace.object(image.values.first().unwrap_or(&Value::Null)));
        }
        for (table, index) in registered {
            let Some(def) = (*table == self.table).then(|| index.bind(&self.schema)).flatten() else { continue };
            for row in self.images.iter().flat_map(Image::variants) {
                let values = node_values(&def, &|c| row.get(c).cloned().unwrap_or(Value::Null));
                push(keyspace.node_of_index(&self.schema, &def, &values));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, table: &str, shape: &str, old: Option<&str>, new: Option<&str>) -> Vec<Value> {
        let text = |t: Option<&str>| t.map_or(Value::Null, |t| Value::Text(t.to_owned()));
        vec![Value::Int(id), Value::Text(table.to_owned()), Value::Text(shape.to_owned()), text(old), text(new)]
    }

    #[test]
    fn images_parse_as_every_dialect_writes_them() {
        let shape = "id:int&ok:bool&at:ts&f:float&u:uuid&b:bytes&name:text";
        let rows = [
            // PostgreSQL: booleans, UUID text, lower-case hex, exact floats.
            row(
                1,
                "item",
                shape,
                None,
                Some(r#"[1, true, -1, 0.30000000000000004, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00ff", "a'b\"c"]"#),
            ),
            // MySQL: 0/1 booleans, upper-case hex.
            row(2, "item", shape, Some(r#"[2, 0, 17, 1e300, "A0EEBC999C0B4EF8BB6D6BB9BD380A11", "00FF", "ü"]"#), None),
            // SQLite: floats as 17-digit text, PostgreSQL's infinities as strings.
            row(
                3,
                "item",
                shape,
                Some(r#"[3, 1, null, "0.10000000000000001", null, "", null]"#),
                Some(r#"[3, 1, null, "Infinity", null, "", null]"#),
            ),
        ];
        let (changes, unreadable) = changes(&rows);
        assert!(unreadable.is_empty());
        let uuid = [0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11];
        let values: Vec<&Vec<Value>> = changes.iter().flat_map(|c| c.images.iter().map(|i| &i.values)).collect();
        assert_eq!(
            *values[0],
            vec![
                Value::Int(1),
                Value::Bool(true),
                Value::Timestamp(-1),
                Value::Float(0.1 + 0.2),
                Value::Uuid(uuid),
                Value::Bytes(vec![0, 255]),
                Value::Text("a'b\"c".into()),
            ]
        );
        assert_eq!(values[1][1], Value::Bool(false));
        assert_eq!(values[1][4], Value::Uuid(uuid));
        assert_eq!(values[2][3], Value::Float(0.1));
        assert_eq!(values[3][3], Value::Float(f64::INFINITY));
        assert_eq!(values[2][5], Value::Bytes(Vec::new()));
        // Only floats written as text are approximate.
        assert!(changes[0].images[0].approximate.is_empty() && changes[1].images[0].approximate.is_empty());
        assert_eq!(changes[2].images[0].approximate, [3]);
    }

    #[test]
    fn an_approximate_float_names_the_nodes_of_its_neighbours() {
        let exact = 1e300_f64;
        let below = f64::from_bits(exact.to_bits() - 1);
        let near: Vec<f64> = nearby(below).collect();
        assert_eq!(near.len(), 5);
        assert!(near.contains(&exact) && near.windows(2).all(|w| w[0] < w[1]), "{near:?}");
        let zeros: Vec<f64> = nearby(-0.0).collect();
        assert_eq!(zeros[2], 0.0);
        assert!(zeros[1] < 0.0 && zeros[3] > 0.0 && zeros[1] == -zeros[3], "{zeros:?}");
        assert_eq!(nearby(f64::MAX).count(), 3, "no infinity next to the largest double");
        assert_eq!(nearby(f64::INFINITY).collect::<Vec<_>>(), [f64::INFINITY]);
        // +0.0 and -0.0 are one point of the ordering: the same neighbours.
        assert_eq!(nearby(0.0).collect::<Vec<_>>(), zeros, "the neighbours of +0.0");
        let image = Image { values: vec![Value::Int(1), Value::Float(below)], approximate: vec![1] };
        assert_eq!(image.variants().len(), 5);
    }

    /// A drain of the changes is due at the store's first call, then once an
    /// interval, however often the store is called in between: the cost the docs
    /// promise is one `SELECT` of the changes per interval and process.
    #[test]
    fn a_drain_is_due_once_an_interval() {
        assert!(Capture::new(&Settings::default()).is_none(), "capture is off unless asked for");
        let interval = Duration::from_secs(10);
        let settings = Settings { capture_outside_writes: true, outbox_interval: interval, ..Settings::default() };
        let mut capture = Capture::new(&settings).expect("capture is on");
        // The store was built a minute ago; moving `start` back moves the clock on.
        let built = |ago: Duration| Instant::now().checked_sub(ago).expect("the machine has been up for minutes");
        capture.start = built(Duration::from_secs(60));
        assert!(capture.take_due(), "the first call drains");
        assert!(!capture.take_due(), "the next call, within the interval, does not");
        assert!(!capture.take_due(), "nor the one after it");
        capture.start = built(Duration::from_secs(60) + interval + Duration::from_secs(1));
        assert!(capture.take_due(), "due again once the interval has passed");
        assert!(!capture.take_due(), "and then not before the next interval");
    }

    #[test]
    fn damaged_rows_name_no_change() {
        let rows = [
            row(1, "item", "id:int", Some("[1"), None),
            row(2, "item", "id:int", Some("[1, 2]"), None),
            row(3, "item", "id:integer", Some("[1]"), None),
            row(4, "it em", "id:int", Some("[1]"), None),
            row(5, "item", "id:int", Some(r#"["1"]"#), None),
            row(6, "item", "u:uuid", Some(r#"["00ff"]"#), None),
            row(7, "item", "b:bytes", Some(r#"["0g"]"#), None),
            row(8, "item", "id:int", Some("[1]"), None),
        ];
        let (changes, unreadable) = changes(&rows);
        assert_eq!(unreadable, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(changes.len(), 1);
    }

    #[test]
    fn a_change_names_both_objects_and_the_nodes_of_both_images() {
        let model = Schema::new("Item", "odd table")
            .column("id", Type::Int, false)
            .column("category_id", Type::Int, false)
            .column("label", Type::Text, false)
            .key("id")
            .index(&["category_id"], None)
            .index(&["label"], Some(1));
        let shape = Shape::of(&model).encode();
        let rows = [row(9, "odd%20table", &shape, Some(r#"[3, 5, "ab"]"#), Some(r#"[4, 6, "xy"]"#))];
        let (changes, _) = changes(&rows);
        let registered: Vec<(String, RegisteredIndex)> = model
            .indexes
            .iter()
            .map(|ix| ("odd table".to_owned(), RegisteredIndex::of(&model, ix)))
            .chain([(
                "other".to_owned(),
                RegisteredIndex { columns: vec!["category_id".into()], prefix: None, types: vec![], order: None },
            )])
            .collect();
        let settings = Settings::default();
        let mut keys = Vec::new();
        changes[0].keys(&settings, &registered, &mut keys);
        let ks = KeySpace::new(&settings.namespace, &model, settings.generation);
        let node = |ix: usize, v: Value| ks.node_of_index(&model, &model.indexes[ix], &[v]);
        let want = vec![
            ks.object(&Value::Int(3)),
            ks.object(&Value::Int(4)),
            node(0, Value::Int(5)),
            node(0, Value::Int(6)),
            node(1, Value::Text("a".into())),
            node(1, Value::Text("x".into())),
        ];
        assert_eq!(keys, want);
    }
}
