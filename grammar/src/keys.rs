//! Cache keys: `{namespace}:{table}:{generation}:{col}={value}[&…]` for index nodes,
//! `…:{key}` for objects (DESIGN.md "Keys and cached values").
//!
//! A key names the table, the key's value, and the index definition (its columns
//! and, for a prefix index, the prefix length) — never the whole struct. Two versions
//! of a model that share a table (a rolling deploy) therefore share keys, and each
//! one's writes reach the other's reads; the object *values* carry the shape they
//! were encoded with, so neither decodes the other's bytes as its own.
//!
//! Keys are pure functions of the schema, the configuration and the values, so they
//! live here (no I/O) where `Explain` can show them too.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::plan::NodeRef;
use crate::schema::{IndexDef, IndexOrder, Schema};
use crate::value::{Type, Value};

/// memcached's limit on key length, in bytes.
pub const MAX_KEY_LEN: usize = 250;

/// How many hex digits of the SHA-256 of a shortened key end it.
pub const SHORTENED_DIGEST_HEX: u64 = 32;

/// How many bytes of a shortened key stay readable before its hash.
pub const READABLE_PREFIX: usize = MAX_KEY_LEN - 1 - SHORTENED_DIGEST_HEX as usize;

/// The keys of one model under one configuration.
#[derive(Clone, Debug)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    /// The keys of `schema`'s table under `namespace`, at cache `generation`.
    pub fn new(namespace: &str, schema: &Schema, generation: u64) -> KeySpace {
        let mut prefix = String::new();
        escape_text(namespace, &mut prefix);
        prefix.push(':');
        escape_text(&schema.table, &mut prefix);
        let _ = write!(prefix, ":{generation}:");
        KeySpace { prefix }
    }

    /// The key of the object whose primary key is `key`.
    pub fn object(&self, key: &Value) -> String {
        // Room for the prefix and an integer key, so the usual key is one allocation.
        let mut k = String::with_capacity(self.prefix.len() + 24);
        self.push_object(key, &mut k);
        k
    }

    /// Appends the key of the object whose primary key is `key` to `out` (the
    /// same text as [`KeySpace::object`]), so that many keys can share one buffer.
    pub fn push_object(&self, key: &Value, out: &mut String) {
        let start = out.len();
        out.push_str(&self.prefix);
        escape_value(key, out);
        if out.len() - start > MAX_KEY_LEN {
            let long = out.split_off(start);
            out.push_str(&shorten(long));
        }
    }

    /// The key of an index node (or, for `index: None`, of the object itself).
    pub fn node(&self, schema: &Schema, node: &NodeRef) -> String {
        let Some(index) = node.index else {
            return node.values.first().map_or_else(|| self.object(&Value::Null), |v| self.object(v));
        };
        let Some(ix) = schema.indexes.get(index) else {
            return self.object(&Value::Null);
        };
        self.node_of_index(schema, ix, &node.values)
    }

    /// The key of the node of `ix`, an index on `schema`'s columns that need not be
    /// one of `schema.indexes` (one another version of the model declares, found in
    /// the index registry and bound to this schema's columns by
    /// [`RegisteredIndex::bind`]), named by `values` (`plan::node_values`). Spelled
    /// exactly as [`KeySpace::node`] spells the declaring version's node, since a key
    /// names only the table, the column names, the prefix length and the values.
    pub fn node_of_index(&self, schema: &Schema, ix: &IndexDef, values: &[Value]) -> String {
        let mut k = self.prefix.clone();
        write_node_suffix(schema, ix, values.iter().map(Some), &mut k);
        shorten(k)
    }

    /// The node key with `{name}` holes where values are not known yet (for Explain).
    pub fn node_template(&self, schema: &Schema, index: usize, values: &[Result<Value, String>]) -> String {
        let mut k = self.prefix.clone();
        let ix = &schema.indexes[index];
        for (i, &col) in ix.columns.iter().enumerate() {
            if i > 0 {
                k.push('&');
            }
            write_column(schema, col, ix.prefix, &mut k);
            match values.get(i) {
                Some(Ok(v)) => escape_value(v, &mut k),
                Some(Err(hole)) => {
                    let _ = write!(k, "{{{hole}}}");
                }
                None => k.push('?'),
            }
        }
        write_order(schema, ix, &mut k);
        k
    }
}

/// One piece of a node key as the database spells it from a row
/// ([`KeySpace::node_spelling`]): text as it stands, or the text of a column's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// Text as it stands in the key.
    Text(String),
    /// The value of a column as [`escape_value`] spells it (of its first `prefix`
    /// characters, for a prefix index).
    Column {
        /// The column's number in the schema.
        column: usize,
        /// A prefix index's length.
        prefix: Option<u32>,
    },
}

/// The key of an index's node as pieces the database can put together from a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpelling {
    /// The pieces, in order.
    pub parts: Vec<KeyPart>,
    /// Whether the key may be longer than [`MAX_KEY_LEN`] (a text or bytes column,
    /// or long names), and must then be shortened as [`KeySpace`] shortens it.
    pub may_be_long: bool,
}

impl KeySpace {
    /// The key of `ix`'s node of a row, as pieces the database can put together
    /// from the row's own columns, for a statement that must name the nodes of a
    /// row it reads itself. `None` when a column of the index is of a type whose
    /// text SQL would not give exactly as [`escape_value`] does (floats, JSON); the
    /// dialect decides the rest.
    pub fn node_spelling(&self, schema: &Schema, ix: &IndexDef) -> Option<NodeSpelling> {
        let longest = |c: usize| match schema.columns.get(c).map(|c| c.ty)? {
            Type::Int => Some(Some(Value::Int(i64::MIN))),
            Type::Bool => Some(Some(Value::Bool(false))),
            Type::Uuid => Some(Some(Value::Uuid([0; 16]))),
            Type::Timestamp => Some(Some(Value::Timestamp(i64::MIN))),
            Type::Text | Type::Bytes => Some(None),
            _ => None,
        };
        let longest: Vec<Option<Value>> = ix.columns.iter().map(|&c| longest(c)).collect::<Option<_>>()?;
        let mut key = self.prefix.clone();
        write_node_suffix(schema, ix, longest.iter().map(Option::as_ref), &mut key);
        let may_be_long = key.len() > MAX_KEY_LEN || longest.iter().any(Option::is_none);
        let mut parts = Vec::new();
        let mut text = self.prefix.clone();
        for (i, &column) in ix.columns.iter().enumerate() {
            if i > 0 {
                text.push('&');
            }
            write_column(schema, column, ix.prefix, &mut text);
            parts.push(KeyPart::Text(std::mem::take(&mut text)));
            parts.push(KeyPart::Column { column, prefix: ix.prefix });
        }
        write_order(schema, ix, &mut text);
        if !text.is_empty() {
            parts.push(KeyPart::Text(text));
        }
        Some(NodeSpelling { parts, may_be_long })
    }
}

fn write_node_suffix<'a>(
    schema: &Schema,
    ix: &IndexDef,
    values: impl Iterator<Item = Option<&'a Value>>,
    k: &mut String,
) {
    for (i, (&col, v)) in ix.columns.iter().zip(values).enumerate() {
        if i > 0 {
            k.push('&');
        }
        write_column(schema, col, ix.prefix, k);
        if let Some(v) = v {
            escape_value(v, k);
        }
    }
    write_order(schema, ix, k);
}

/// An ordered index's nodes hold entries of another format (each id with its order
/// value), so their keys differ from those of an unordered index on the same
/// columns: `cart_id=5>position`. Escaping never produces `>`.
fn write_order(schema: &Schema, ix: &IndexDef, k: &mut String) {
    if let Some(order) = ix.order {
        k.push('>');
        escape_text(&schema.columns[order.column].name, k);
    }
}

fn write_column(schema: &Schema, col: usize, prefix: Option<u32>, k: &mut String) {
    escape_text(&schema.columns[col].name, k);
    if let Some(n) = prefix {
        let _ = write!(k, "[:{n}]");
    }
    k.push('=');
}

/// An index definition as the index registry stores it: the SQL names of its
/// columns and its prefix length, which is all a node key says of an index. A
/// version of a model that does not declare the index binds it to its own columns
/// ([`RegisteredIndex::bind`]) and spells its nodes' keys as the declaring version
/// does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredIndex {
    /// The SQL column names, in the index's order.
    pub columns: Vec<String>,
    /// The prefix length of a prefix index.
    pub prefix: Option<u32>,
    /// The columns' types, in the same order (empty when the definition does not
    /// say): a version of the model without one of the columns reads its values in
    /// the write's transaction, and needs their types to spell them as the
    /// declaring version does.
    pub types: Vec<Type>,
    /// An ordered index's order column, with its type when the definition says it.
    /// Appends carry no order value (a reader asks the object), so a version binds
    /// the index as soon as it has the column.
    pub order: Option<(String, Option<Type>)>,
}

impl RegisteredIndex {
    /// The definition of `schema.indexes[index]`.
    pub fn of(schema: &Schema, ix: &IndexDef) -> RegisteredIndex {
        RegisteredIndex {
            columns: ix.columns.iter().map(|&c| schema.columns[c].name.clone()).collect(),
            prefix: ix.prefix,
            types: ix.columns.iter().map(|&c| schema.columns[c].ty).collect(),
            order: ix.order.map(|o| (schema.columns[o.column].name.clone(), Some(schema.columns[o.column].ty))),
        }
    }

    /// The definition as text, the node key's suffix without its values, each
    /// column with its type (`category_id:int&name:text`, `name:text[:1]`): column
    /// names escaped as in keys, so `&`, `:` and `[` inside a name cannot be
    /// mistaken for separators.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, name) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            escape_text(name, &mut out);
            if let Some(ty) = self.types.get(i) {
                out.push(':');
                out.push_str(ty.tag());
            }
        }
        if let Some((name, ty)) = &self.order {
            out.push('>');
            escape_text(name, &mut out);
            if let Some(ty) = ty {
                out.push(':');
                out.push_str(ty.tag());
            }
        }
        if let Some(n) = self.prefix {
            let _ = write!(out, "[:{n}]");
        }
        out
    }

    /// The definition of [`RegisteredIndex::encode`]'s text (or of one without
    /// types); `None` for text it did not produce (a damaged or foreign row names no
    /// index).
    pub fn decode(text: &str) -> Option<RegisteredIndex> {
        let (parts, prefix) = match text.strip_suffix(']').and_then(|t| t.rsplit_once("[:")) {
            Some((parts, n)) => (parts, Some(n.parse::<u32>().ok()?)),
            None => (text, None),
        };
        let (parts, order) = match parts.split_once('>') {
            Some((parts, order)) => (parts, Some(Self::decode_column(order)?)),
            None => (parts, None),
        };
        let mut columns = Vec::new();
        let mut types = Vec::new();
        for part in parts.split('&') {
            let (name, ty) = Self::decode_column(part)?;
            columns.push(name);
            types.extend(ty);
        }
        if types.len() != columns.len() {
            types.clear();
        }
        Some(RegisteredIndex { columns, prefix, types, order })
    }

    /// `name` or `name:type`, the name escaped.
    fn decode_column(part: &str) -> Option<(String, Option<Type>)> {
        let (name, ty) = match part.split_once(':') {
            Some((name, tag)) => (name, Some(Type::from_tag(tag)?)),
            None => (part, None),
        };
        let name = unescape_text(name)?;
        (!name.is_empty()).then_some((name, ty))
    }

    /// The columns of this index `schema` lacks, with their types; `None` when the
    /// definition does not say a missing column's type.
    pub fn missing_columns(&self, schema: &Schema) -> Option<Vec<(String, Type)>> {
        let mut missing = Vec::new();
        for (i, name) in self.columns.iter().enumerate() {
            if !schema.columns.iter().any(|c| c.name == *name) {
                missing.push((name.clone(), *self.types.get(i)?));
            }
        }
        if let Some((name, ty)) = &self.order {
            if !schema.columns.iter().any(|c| c.name == *name) {
                missing.push((name.clone(), (*ty)?));
            }
        }
        Some(missing)
    }

    /// The index on `schema`'s columns of the same names, or `None` when `schema`
    /// lacks one of them.
    pub fn bind(&self, schema: &Schema) -> Option<IndexDef> {
        let columns = self
            .columns
            .iter()
            .map(|name| schema.columns.iter().position(|c| c.name == *name))
            .collect::<Option<Vec<usize>>>()?;
        let order = match &self.order {
            Some((name, _)) => {
                let column = schema.columns.iter().position(|c| c.name == *name)?;
                Some(IndexOrder { column, descending: false })
            }
            None => None,
        };
        Some(IndexDef { columns, prefix: self.prefix, order })
    }
}

/// The text [`escape_text`] escaped; `None` for text it cannot have produced.
pub fn unescape_text(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hi = char::from(it.next()?).to_digit(16)?;
            let lo = char::from(it.next()?).to_digit(16)?;
            bytes.push((hi * 16 + lo) as u8);
        } else if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            bytes.push(b);
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Appends a value in key-safe spelling. Within one column every value has the same
/// type, so the spelling need not say which type it is; it must only be injective.
/// `None` is `~`, which escaping never produces.
pub fn escape_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push('~'),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => push_int(*i, out),
        // -0.0 == 0.0, so both must name the same node.
        Value::Float(x) => {
            let x = if *x == 0.0 { 0.0 } else { *x };
            let _ = write!(out, "{x:?}");
        }
        Value::Text(s) => escape_text(s, out),
        // `x` then two hex digits a byte: `x` alone is the empty string, and hex
        // digits never spell `~`.
        Value::Bytes(b) => {
            out.push('x');
            push_hex(b, out);
        }
        Value::Timestamp(us) => push_int(*us, out),
        Value::Uuid(u) => push_hex(u, out),
        // Never in a key (JSON is not indexable); spelled injectively all the same.
        Value::Json(j) => escape_text(j, out),
        Value::List(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                escape_value(item, out);
            }
            out.push(')');
        }
    }
}

/// Appends two lower-case hex digits per byte.
fn push_hex(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// Percent-encodes every byte outside `[A-Za-z0-9._-]`, so spaces, control bytes,
/// the key's own separators (`:` `=` `&`) and Unicode can never break a key apart.
pub fn escape_text(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Appends `i` in decimal, as `{i}` formats it, without the `fmt` machinery (keys
/// of integer ids are built for every object of every fetch).
fn push_int(i: i64, out: &mut String) {
    out.push_str(itoa::Buffer::new().format(i));
}

/// Keys longer than memcached allows keep a readable prefix and end in `#` and 128
/// bits of SHA-256 of the whole key: collision-resistant even against chosen values,
/// since two nodes sharing a key would make one node's lazy removal drop the other's ids.
fn shorten(key: String) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut cut = READABLE_PREFIX;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(MAX_KEY_LEN);
    out.push_str(&key[..cut]);
    out.push('#');
    for b in &digest[..SHORTENED_DIGEST_HEX as usize / 2] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Type;

    fn schema() -> Schema {
        Schema::new("Item", "item")
            .column("id", Type::Int, false)
            .column("category_id", Type::Int, false)
            .column("name", Type::Text, false)
            .key("id")
            .index(&["category_id"], None)
            .index(&["name"], Some(1))
            .index(&["category_id", "name"], None)
            .ordered_index(&["category_id"], "name", true)
    }

    fn check(node: NodeRef, expect: &str) {
        let s = schema();
        let ks = KeySpace { prefix: "ns:item:h:0:".into() };
        assert_eq!(ks.node(&s, &node), expect);
    }

    /// A node key as the database puts it together from its pieces: each column's
    /// value spelled as `escape_value` spells it, the whole shortened where it may
    /// be long.
    fn assembled(spelling: &NodeSpelling, row: &[Value]) -> String {
        let mut key = String::new();
        for part in &spelling.parts {
            match part {
                KeyPart::Text(t) => key.push_str(t),
                KeyPart::Column { column, prefix: None } => escape_value(&row[*column], &mut key),
                KeyPart::Column { column, prefix: Some(n) } => {
                    let Value::Text(s) = &row[*column] else { unreachable!("a prefix index is on text") };
                    escape_text(&s.chars().take(*n as usize).collect::<String>(), &mut key);
                }
            }
        }
        if spelling.may_be_long { shorten(key) } else { key }
    }

    #[test]
    fn node_keys_have_a_spelling_the_database_can_assemble() {
        let s = Schema::new("Line", "line")
            .column("id", Type::Int, false)
            .column("cart_id", Type::Int, true)
            .column("done", Type::Bool, false)
            .column("name", Type::Text, false)
            .column("price", Type::Float, false)
            .column("at", Type::Timestamp, false)
            .key("id")
            .index(&["cart_id"], None)
            .index(&["cart_id", "done"], None)
            .ordered_index(&["cart_id"], "name", true)
            .index(&["name"], Some(2))
            .index(&["done", "name"], None)
            .index(&["at"], None)
            .index(&["price"], None);
        let ks = KeySpace::new("ns", &s, 3);
        let long = "é".repeat(200);
        for row in [
            vec![1.into(), 5.into(), true.into(), "a b".into(), 1.5.into(), Value::Timestamp(0)],
            vec![2.into(), Value::Null, false.into(), "".into(), 0.0.into(), Value::Timestamp(-1)],
            vec![
                3.into(),
                i64::MIN.into(),
                false.into(),
                long.as_str().into(),
                (-2e-308).into(),
                Value::Timestamp(i64::MIN),
            ],
        ] {
            for (i, ix) in s.indexes.iter().enumerate().take(6) {
                let spelling = ks.node_spelling(&s, ix).expect("every type but floats and JSON");
                assert_eq!(spelling.may_be_long, (3..5).contains(&i), "index {i}: only text may make a key long");
                let node = NodeRef { index: Some(i), values: crate::plan::node_values(ix, &|c| row[c].clone()) };
                assert_eq!(assembled(&spelling, &row), ks.node(&s, &node), "index {i}");
            }
        }
        assert_eq!(ks.node_spelling(&s, &s.indexes[6]), None, "SQL may spell a double's digits otherwise");
    }

    #[test]
    fn a_key_of_integers_may_be_long_only_under_long_names() {
        let s = Schema::new("Line", "line").column("id", Type::Int, false).column("cart_id", Type::Int, false);
        let s = s.key("id").index(&["cart_id"], None);
        let fits = KeySpace::new(&"n".repeat(200), &s, 0);
        assert_eq!(fits.node_spelling(&s, &s.indexes[0]).map(|n| n.may_be_long), Some(false));
        let long = KeySpace::new(&"n".repeat(230), &s, 0);
        assert_eq!(long.node_spelling(&s, &s.indexes[0]).map(|n| n.may_be_long), Some(true));
    }

    #[test]
    fn node_keys_are_readable_and_escaped() {
        check(NodeRef { index: Some(0), values: vec![5.into()] }, "ns:item:h:0:category_id=5");
        check(NodeRef { index: Some(1), values: vec!["m".into()] }, "ns:item:h:0:name[:1]=m");
        check(
            NodeRef { index: Some(2), values: vec![5.into(), "a b:c".into()] },
            "ns:item:h:0:category_id=5&name=a%20b%3Ac",
        );
        check(NodeRef { index: None, values: vec![1111.into()] }, "ns:item:h:0:1111");
        check(
            NodeRef { index: Some(2), values: vec![5.into(), "é\n".into()] },
            "ns:item:h:0:category_id=5&name=%C3%A9%0A",
        );
    }

    #[test]
    fn integers_and_escapes_are_spelled_as_fmt_spells_them() {
        for i in [0, 1, -1, 9, 10, -10, 1111, i64::MAX, i64::MIN, i64::MIN + 1, 1 << 40] {
            let mut fast = String::new();
            escape_value(&Value::Int(i), &mut fast);
            assert_eq!(fast, format!("{i}"));
        }
        let text: String = (0u8..=127).map(char::from).chain("é€😀".chars()).collect();
        let mut fast = String::new();
        escape_text(&text, &mut fast);
        let mut slow = String::new();
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                slow.push(char::from(b));
            } else {
                let _ = write!(slow, "%{b:02X}");
            }
        }
        assert_eq!(fast, slow);
        let ks = KeySpace { prefix: "ns:item:h:0:".into() };
        assert_eq!(ks.object(&Value::Int(-42)), "ns:item:h:0:-42");
        assert_eq!(ks.object(&Value::Text("a b".into())), "ns:item:h:0:a%20b");
    }

    #[test]
    fn null_and_negative_zero() {
        let mut a = String::new();
        escape_value(&Value::Float(-0.0), &mut a);
        let mut b = String::new();
        escape_value(&Value::Float(0.0), &mut b);
        assert_eq!(a, b);
        let mut n = String::new();
        escape_value(&Value::Null, &mut n);
        let mut t = String::new();
        escape_value(&Value::Text("~".into()), &mut t);
        assert_ne!(n, t);
    }

    /// Bytes, instants and UUIDs spell as hex or decimal, distinct from `None` and
    /// from each other within their type (empty bytes included).
    #[test]
    fn bytes_instants_and_uuids() {
        let spell = |v: Value| {
            let mut out = String::new();
            escape_value(&v, &mut out);
            out
        };
        assert_eq!(spell(Value::Bytes(Vec::new())), "x");
        assert_eq!(spell(Value::Bytes(vec![0, 0xab, 0xff])), "x00abff");
        assert_ne!(spell(Value::Bytes(vec![0])), spell(Value::Bytes(vec![0, 0])));
        assert_eq!(spell(Value::Timestamp(-1)), "-1");
        let mut u = [0u8; 16];
        u[15] = 0x1f;
        assert_eq!(spell(Value::Uuid(u)), "0000000000000000000000000000001f");
        for v in [Value::Bytes(Vec::new()), Value::Timestamp(0), Value::Uuid([0; 16])] {
            assert_ne!(spell(v), spell(Value::Null));
        }
    }

    /// A version that does not declare an index spells its node keys from the
    /// registry's definition exactly as the declaring version's `KeySpace::node`
    /// does: same namespace, table and generation, different structs (columns in
    /// another order, fields renamed onto the same columns, one more column).
    #[test]
    fn a_registered_index_is_spelled_as_its_declaring_version_spells_it() {
        let declaring = schema();
        let mut other = Schema::new("ItemOld", "item")
            .column("label", Type::Text, true)
            .column("name", Type::Text, false)
            .column("id", Type::Int, false)
            .column("category_id", Type::Int, false)
            .key("id");
        other.columns[1].field = "title".into();
        let ours = KeySpace::new("memdex", &declaring, 3);
        let theirs = KeySpace::new("memdex", &other, 3);
        let long = "ü".repeat(300);
        let rows: [[Value; 3]; 4] = [
            [5.into(), "a b:c".into(), 1.into()],
            [(-1).into(), "é&[:2]".into(), 2.into()],
            [0.into(), Value::Text(long), 3.into()],
            [7.into(), Value::Text(String::new()), 4.into()],
        ];
        for (index, ix) in declaring.indexes.iter().enumerate() {
            let text = RegisteredIndex::of(&declaring, ix).encode();
            let registered = RegisteredIndex::decode(&text).expect("the registry's text decodes");
            assert_eq!(registered, RegisteredIndex::of(&declaring, ix));
            let bound = registered.bind(&other).expect("the other version has the columns");
            for [category, name, id] in &rows {
                // Columns of `declaring`: id, category_id, name.
                let declared = [id.clone(), category.clone(), name.clone()];
                let node = crate::plan::node_of_row(&declaring, index, &|c| declared[c].clone());
                // Columns of `other`: label, name, id, category_id.
                let as_other = [Value::Null, name.clone(), id.clone(), category.clone()];
                let values = crate::plan::node_values(&bound, &|c| as_other[c].clone());
                assert_eq!(theirs.node_of_index(&other, &bound, &values), ours.node(&declaring, &node), "{text}");
            }
        }
        // A column the other version lacks: the index cannot be bound, and the
        // definition names the column with its type.
        let lacking =
            RegisteredIndex { columns: vec!["price".into(), "name".into()], prefix: None, types: vec![], order: None };
        assert_eq!(lacking.bind(&other), None);
        assert_eq!(lacking.missing_columns(&other), None, "no types: the missing column cannot be read");
        let typed = RegisteredIndex { types: vec![Type::Float, Type::Text], ..lacking };
        assert_eq!(typed.missing_columns(&other), Some(vec![("price".to_owned(), Type::Float)]));
        assert_eq!(typed.encode(), "price:float&name:text");
        // Names with separators round-trip, with and without types; foreign text
        // decodes to nothing.
        let columns: Vec<String> = vec!["a&b".into(), "c[:1]:x".into(), "ü".into()];
        let odd = RegisteredIndex { columns: columns.clone(), prefix: None, types: vec![], order: None };
        assert_eq!(RegisteredIndex::decode(&odd.encode()), Some(odd));
        let odd = RegisteredIndex {
            columns,
            prefix: Some(3),
            types: vec![Type::Bool, Type::Uuid, Type::Timestamp],
            order: None,
        };
        assert_eq!(RegisteredIndex::decode(&odd.encode()), Some(odd));
        let prefixed =
            RegisteredIndex { columns: vec!["name".into()], prefix: Some(12), types: vec![Type::Text], order: None };
        assert_eq!(prefixed.encode(), "name:text[:12]");
        assert_eq!(RegisteredIndex::decode("name:text[:12]"), Some(prefixed.clone()));
        let untyped = RegisteredIndex { types: vec![], ..prefixed };
        assert_eq!(RegisteredIndex::decode("name[:12]"), Some(untyped.clone()));
        assert_eq!(RegisteredIndex::decode("a:int&name[:12]").map(|ix| ix.types), Some(vec![]), "partly typed");
        // An ordered index: its order column after `>`; a version lacking the column
        // reads it like any other missing column.
        let ordered = RegisteredIndex {
            columns: vec!["cart_id".into()],
            prefix: None,
            types: vec![Type::Int],
            order: Some(("pos>x".into(), Some(Type::Float))),
        };
        assert_eq!(ordered.encode(), "cart_id:int>pos%3Ex:float");
        assert_eq!(RegisteredIndex::decode(&ordered.encode()), Some(ordered.clone()));
        assert_eq!(
            ordered.missing_columns(&other),
            Some(vec![("cart_id".into(), Type::Int), ("pos>x".into(), Type::Float)])
        );
        assert_eq!(ordered.bind(&other), None);
        for bad in ["", "a&&b", "a b", "%zz", "name[:x]", "%FF", "a:integer", ":int", "a:", "a>", "a>b>c", ">a"] {
            assert_eq!(RegisteredIndex::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ordered_nodes_name_their_order_column() {
        let s = schema();
        let ks = KeySpace::new("memdex", &s, 0);
        let ordered = NodeRef { index: Some(3), values: vec![5.into()] };
        let plain = NodeRef { index: Some(0), values: vec![5.into()] };
        assert_eq!(ks.node(&s, &ordered), "memdex:item:0:category_id=5>name");
        assert_ne!(ks.node(&s, &ordered), ks.node(&s, &plain), "entries of another format, another key");
        assert_eq!(ks.node_template(&s, 3, &[Err("cat".into())]), "memdex:item:0:category_id={cat}>name");
        assert_eq!(
            s.describe_indexes(),
            "id (key), category_id, name (prefix 1), (category_id, name), category_id (ordered by name desc)"
        );
    }

    #[test]
    fn long_keys_are_shortened_keeping_a_prefix() {
        let s = schema();
        let ks = KeySpace::new("memdex", &s, 0);
        let long = "ü".repeat(600);
        let k1 = ks.object(&Value::Text(long.clone()));
        let k2 = ks.object(&Value::Text(format!("{long}x")));
        assert!(k1.len() <= MAX_KEY_LEN, "{}", k1.len());
        assert!(k1.starts_with("memdex:item:"));
        assert_ne!(k1, k2);
        assert!(k1.bytes().all(|b| b.is_ascii_graphic()));
        // Appended into a shared buffer, keys are spelled the same, long ones too.
        let mut shared = String::from("before|");
        ks.push_object(&Value::Text(long.clone()), &mut shared);
        shared.push('|');
        ks.push_object(&Value::Int(7), &mut shared);
        assert_eq!(shared, format!("before|{k1}|{}", ks.object(&Value::Int(7))));
    }
}
