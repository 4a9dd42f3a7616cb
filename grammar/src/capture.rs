//! Capturing the writes made outside memdex (a `psql` session, another service, a
//! data migration), which the cache would otherwise never hear of.
//!
//! With capture on, `migrate` puts triggers on a model's table that record every
//! row a write touches, its image before and after, in the `memdex_changes` table,
//! unless the write came from memdex itself (which keeps the cache right on its
//! own; `sql::capture_triggers`). memdex's drains read those rows and delete the
//! cache keys they name: the row's object, and the nodes of every registered index
//! its images belong to.
//!
//! A trigger records only the columns memdex needs to spell those keys: the key and
//! every indexed column of the model version that created it. Its [`Shape`] names
//! them with their types, so that the drain can rebuild each value exactly as the
//! key spells it without knowing the model: the captured rows are self-describing.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::keys::{escape_text, unescape_text};
use crate::schema::Schema;
use crate::value::Type;

/// How memdex marks the database sessions it opens, so that capture triggers skip
/// their writes (memdex keeps the cache right for those itself; capturing them too
/// would only empty the cache behind every write). The trigger's condition is
/// `sql`'s `SqlDialect::outside_memdex`; the drivers set the mark on connect.
#[derive(Debug)]
pub struct SessionMark;

impl SessionMark {
    /// SQLite: the page cache size, in KiB when negative (`PRAGMA cache_size`):
    /// about 8 MiB, a size no other client picks by accident.
    pub const SQLITE_CACHE_SIZE: i64 = -8191;
    /// PostgreSQL: a custom setting, `on` in memdex's sessions (set in the
    /// startup packet, so no round trip).
    pub const POSTGRES_SETTING: &str = "memdex.writer";
    /// MySQL: a user variable, set by the pool's init statements.
    pub const MYSQL_VARIABLE: &str = "@memdex_writer";
}

/// The columns a capture trigger records, with their types: the key first, then
/// each indexed column once, in the schema's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// `(SQL column name, type)`; the first is the key.
    pub columns: Vec<(String, Type)>,
}

/// A write a capture trigger fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A row inserted: only a new image.
    Insert,
    /// A row updated: both images.
    Update,
    /// A row deleted: only an old image.
    Delete,
}

impl Event {
    /// The three events, in the order their triggers are created.
    pub const ALL: [Event; 3] = [Event::Insert, Event::Update, Event::Delete];

    /// Whether the row had an image before the write.
    pub fn has_old(self) -> bool {
        self != Event::Insert
    }

    /// Whether the row has an image after the write.
    pub fn has_new(self) -> bool {
        self != Event::Delete
    }

    fn letter(self) -> char {
        match self {
            Event::Insert => 'i',
            Event::Update => 'u',
            Event::Delete => 'd',
        }
    }
}

impl Shape {
    /// What `schema`'s capture triggers record: its key, then the columns its
    /// indexes name (an ordered index's order column too: its nodes' keys name it,
    /// and an index binds only to a schema that has it).
    pub fn of(schema: &Schema) -> Shape {
        let mut picked = vec![schema.key];
        for ix in &schema.indexes {
            for &c in ix.columns.iter().chain(ix.order.as_ref().map(|o| &o.column)) {
                if !picked.contains(&c) {
                    picked.push(c);
                }
            }
        }
        picked[1..].sort_unstable();
        let columns = picked.into_iter().map(|c| (schema.columns[c].name.clone(), schema.columns[c].ty)).collect();
        Shape { columns }
    }

    /// The shape as the text a trigger writes into each captured row
    /// (`id:int&category_id:int`): names escaped as in keys, so the text is plain
    /// ASCII that needs no quoting in any dialect's string literal.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (name, ty)) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            escape_text(name, &mut out);
            out.push(':');
            out.push_str(ty.tag());
        }
        out
    }

    /// The shape of [`Shape::encode`]'s text; `None` for text it did not produce.
    pub fn decode(text: &str) -> Option<Shape> {
        let columns = text
            .split('&')
            .map(|part| {
                let (name, tag) = part.split_once(':')?;
                let name = unescape_text(name)?;
                (!name.is_empty()).then_some(())?;
                Some((name, Type::from_tag(tag)?))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Shape { columns })
    }

    /// A schema of `table` with exactly these columns, every one nullable, keyed
    /// by the first: enough to spell the keys of its rows' objects and of the
    /// nodes of any index on these columns (`keys::KeySpace`).
    pub fn schema(&self, table: &str) -> Schema {
        let mut schema = Schema::new(table, table);
        for (name, ty) in &self.columns {
            schema = schema.column(name, *ty, true);
        }
        schema
    }

    /// The name of the trigger (and, on PostgreSQL, of its function) that captures
    /// `event` on `table` with this shape: readable, within every dialect's 63-byte
    /// limit, and distinct per table and shape, so that two versions of a model
    /// with different indexes each keep their own triggers.
    pub fn trigger_name(&self, table: &str, event: Event) -> String {
        let mut readable = String::new();
        escape_text(table, &mut readable);
        readable.truncate(32);
        let digest = Sha256::digest(format!("{table}\n{}", self.encode()).as_bytes());
        let mut name = format!("memdex_{}_{readable}_", event.letter());
        for b in &digest[..6] {
            let _ = write!(name, "{b:02x}");
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Schema {
        Schema::new("Item", "item")
            .column("label", Type::Text, false)
            .column("id", Type::Int, false)
            .column("category_id", Type::Int, false)
            .column("odd name&:", Type::Uuid, true)
            .key("id")
            .index(&["odd name&:", "category_id"], None)
            .index(&["category_id"], None)
    }

    #[test]
    fn a_shape_is_the_key_then_the_indexed_columns() {
        let shape = Shape::of(&item());
        let names: Vec<&str> = shape.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "category_id", "odd name&:"]);
        assert_eq!(shape.encode(), "id:int&category_id:int&odd%20name%26%3A:uuid");
    }

    #[test]
    fn shapes_round_trip_and_damaged_text_names_none() {
        let shape = Shape::of(&item());
        assert_eq!(Shape::decode(&shape.encode()), Some(shape));
        for bad in ["", "id", "id:integer", ":int", "id:int&", "a b:int", "id:int&x:"] {
            assert_eq!(Shape::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_rebuilt_schema_spells_the_same_keys() {
        use crate::keys::{KeySpace, RegisteredIndex};
        use crate::value::Value;
        let model = item();
        let shape = Shape::of(&model);
        let rebuilt = shape.schema("item");
        let values = [Value::Uuid([7; 16]), Value::Int(5)];
        let ix = &model.indexes[0];
        let bound = RegisteredIndex::of(&model, ix).bind(&rebuilt).expect("the rebuilt schema has the columns");
        let model_keys = KeySpace::new("ns", &model, 3);
        let rebuilt_keys = KeySpace::new("ns", &rebuilt, 3);
        assert_eq!(
            model_keys.node_of_index(&model, ix, &values),
            rebuilt_keys.node_of_index(&rebuilt, &bound, &values)
        );
        assert_eq!(model_keys.object(&Value::Int(9)), rebuilt_keys.object(&Value::Int(9)));
    }

    #[test]
    fn trigger_names_are_short_and_differ_by_table_shape_and_event() {
        let shape = Shape::of(&item());
        let long = "t".repeat(200);
        let name = shape.trigger_name(&long, Event::Update);
        assert!(name.len() <= 63, "{name}");
        assert_ne!(shape.trigger_name("item", Event::Insert), shape.trigger_name("item", Event::Update));
        assert_ne!(shape.trigger_name("item", Event::Insert), shape.trigger_name("items", Event::Insert));
        let other = Shape { columns: shape.columns[..2].to_vec() };
        assert_ne!(shape.trigger_name("item", Event::Insert), other.trigger_name("item", Event::Insert));
        assert!(shape.trigger_name("odd \"table\"", Event::Delete).bytes().all(|b| b.is_ascii_graphic()));
    }
}
