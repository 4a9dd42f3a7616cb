//! What a model looks like to the query language: table, columns, key, indexes.
//!
//! `#[derive(Model)]` builds one of these for each model; tests build them by hand.

use crate::value::Type;

/// A model as the query language sees it. `#[derive(Model)]` builds one per model;
/// by hand, use the builder:
///
/// ```
/// use memdex_grammar::{Schema, Type};
///
/// let schema = Schema::new("Item", "item")
///     .column("id", Type::Int, false)
///     .column("category_id", Type::Int, false)
///     .column("first_name", Type::Text, false)
///     .column("deleted_at", Type::Int, true)
///     .key("id")
///     .index(&["category_id"], None)
///     .index(&["first_name"], Some(1));
/// assert_eq!(schema.describe_indexes(), "id (key), category_id, first_name (prefix 1)");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// The Rust type's name (`Item`), used in messages.
    pub model: String,
    /// The SQL table (`item`).
    pub table: String,
    /// In declaration order. Column numbers used everywhere else index this list.
    pub columns: Vec<Column>,
    /// The column number of the primary key.
    pub key: usize,
    /// Declared indexes, in declaration order (the key is not listed here; it is
    /// always available to the planner as the most selective access path).
    pub indexes: Vec<IndexDef>,
}

/// One column: a field of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The Rust field name, as queries spell it.
    pub field: String,
    /// The SQL column name (`#[memdex(column = "…")]`, else the field name).
    pub name: String,
    /// The column's type.
    pub ty: Type,
    /// `Option<T>` fields.
    pub nullable: bool,
}

/// A declared index: the columns whose values name its nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexDef {
    /// Column numbers, in the index's order.
    pub columns: Vec<usize>,
    /// `index(prefix = n)`: the node holds the ids whose value starts with the same
    /// first `n` characters (Unicode scalar values). Only on a single text column.
    pub prefix: Option<u32>,
    /// `index(a, order_by = b)`: the node keeps each id with its row's value of `b`,
    /// so a page of `order_by(b)` reads only the objects of the page.
    pub order: Option<IndexOrder>,
}

impl IndexDef {
    /// The columns of the database's index serving this one: the node's columns,
    /// then an ordered index's order column (so the database answers a page of the
    /// node in index order too).
    pub fn sql_columns(&self) -> Vec<usize> {
        self.columns.iter().copied().chain(self.order.map(|o| o.column)).collect()
    }
}

/// The column an ordered index keeps with each id, and the direction it was
/// declared with. A node serves either direction (the reader sorts the entries);
/// the declared one is the direction of the database's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexOrder {
    /// The column number of the order column.
    pub column: usize,
    /// `order_by = b desc`.
    pub descending: bool,
}

impl Schema {
    /// A schema with no columns yet; add them with [`Schema::column`].
    pub fn new(model: impl Into<String>, table: impl Into<String>) -> Schema {
        Schema { model: model.into(), table: table.into(), columns: Vec::new(), key: 0, indexes: Vec::new() }
    }

    /// Builder used by tests and by the derive: appends a column named like its field.
    pub fn column(mut self, field: &str, ty: Type, nullable: bool) -> Schema {
        self.columns.push(Column { field: field.into(), name: field.into(), ty, nullable });
        self
    }

    /// Builder: marks `field` as the key.
    pub fn key(mut self, field: &str) -> Schema {
        if let Some(i) = self.column_index(field) {
            self.key = i;
        }
        self
    }

    /// Builder: declares an index over `fields` (unknown names are ignored here;
    /// the derive reports them at the attribute).
    pub fn index(mut self, fields: &[&str], prefix: Option<u32>) -> Schema {
        let columns: Option<Vec<usize>> = fields.iter().map(|f| self.column_index(f)).collect();
        if let Some(columns) = columns {
            self.indexes.push(IndexDef { columns, prefix, order: None });
        }
        self
    }

    /// Builder: declares an ordered index over `fields`, keeping `order_field`'s
    /// value with each id (`#[memdex(index(cart_id, order_by = position))]`).
    pub fn ordered_index(mut self, fields: &[&str], order_field: &str, descending: bool) -> Schema {
        let columns: Option<Vec<usize>> = fields.iter().map(|f| self.column_index(f)).collect();
        if let (Some(columns), Some(column)) = (columns, self.column_index(order_field)) {
            self.indexes.push(IndexDef { columns, prefix: None, order: Some(IndexOrder { column, descending }) });
        }
        self
    }

    /// The column number of the field called `field`.
    pub fn column_index(&self, field: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.field == field)
    }

    /// The column of the field called `field`.
    pub fn column_by_field(&self, field: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.field == field)
    }

    /// The key's column.
    ///
    /// # Panics
    ///
    /// If `key` is not a column number: a schema built by the derive or the builder
    /// always has its key among its columns, unless it has no column at all.
    pub fn key_column(&self) -> &Column {
        &self.columns[self.key]
    }

    /// "id (key), category_id, first_name (prefix 1), (cart_id, status)": the
    /// wording used by unindexable errors in both forms.
    pub fn describe_indexes(&self) -> String {
        let mut parts = vec![format!("{} (key)", self.key_column().field)];
        for ix in &self.indexes {
            let names: Vec<&str> = ix.columns.iter().map(|&c| self.columns[c].field.as_str()).collect();
            let mut s = if names.len() == 1 { names[0].to_string() } else { format!("({})", names.join(", ")) };
            if let Some(n) = ix.prefix {
                s.push_str(&format!(" (prefix {n})"));
            }
            if let Some(order) = ix.order {
                let desc = if order.descending { " desc" } else { "" };
                s.push_str(&format!(" (ordered by {}{desc})", self.columns[order.column].field));
            }
            parts.push(s);
        }
        parts.join(", ")
    }

    /// A stable hash (FNV-1a) of everything that decides how rows are stored and
    /// cached (table, column names, types, nullability, key). Every cached object
    /// carries it as its shape tag, so a build whose struct differs treats another
    /// build's bytes as a miss instead of decoding them as the wrong type.
    pub fn schema_hash(&self) -> u32 {
        // FNV-1a: tiny, stable across Rust versions (unlike `DefaultHasher`).
        let mut h: u32 = 0x811c_9dc5;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                h ^= u32::from(*b);
                h = h.wrapping_mul(0x0100_0193);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0193);
        };
        feed(self.table.as_bytes());
        for c in &self.columns {
            feed(c.field.as_bytes());
            feed(c.name.as_bytes());
            feed(c.ty.to_string().as_bytes());
            feed(&[u8::from(c.nullable)]);
        }
        feed(&self.key.to_le_bytes());
        h
    }
}
