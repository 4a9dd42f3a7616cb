//! The statements of capture (`crate::capture`): the table of captured changes and
//! the triggers that fill it.

use sqlparser::ast::{Expr, Ident, ObjectName, SetExpr, Statement, TriggerEvent};

use super::Dialect;
use super::ast::{self, constant_string, ident, null};
use super::ddl::{create_table_with, insert_statement};
use crate::capture::{Event, Shape};
use crate::keys::escape_text;
use crate::schema::Schema;

/// The statements that create the table of captured changes, `changes`, if
/// missing. Its key (an integer) numbers the rows itself, in the order the
/// triggers insert them; its other columns are the table's name as keys escape it,
/// the [`Shape`], and the old and new images.
pub fn create_changes_table(d: Dialect, changes: &Schema) -> Vec<String> {
    create_table_with(d, changes, true)
}

/// The statements that install `model`'s capture triggers, one per [`Event`]: each
/// inserts into `changes` (columns after its key: table, shape, old image, new
/// image) the images of the row it fires for, unless the session is memdex's own.
/// They replace triggers of the same name (the same table and shape), so running
/// them again, from any number of processes, is harmless.
pub fn capture_triggers(d: Dialect, model: &Schema, changes: &Schema) -> Vec<String> {
    let dialect = d.imp();
    let q = dialect.quote();
    let shape = Shape::of(model);
    let mut table = String::new();
    escape_text(&model.table, &mut table);
    let columns: Vec<ObjectName> = changes
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != changes.key)
        .map(|(_, c)| ast::object_name(q, &c.name))
        .collect();
    let image = |row: &str| {
        let values = shape
            .columns
            .iter()
            .map(|(name, ty)| dialect.image_value(Expr::CompoundIdentifier(vec![Ident::new(row), ident(q, name)]), *ty))
            .collect();
        dialect.image(values)
    };
    let mut statements = Vec::new();
    for event in Event::ALL {
        let old = if event.has_old() { image("OLD") } else { null() };
        let new = if event.has_new() { image("NEW") } else { null() };
        let row = vec![constant_string(&table), constant_string(&shape.encode()), old, new];
        let (when, filter) = match dialect.trigger_has_when() {
            // PostgreSQL requires the parentheses.
            true => (Some(ast::nested(dialect.outside_memdex())), None),
            false => (None, Some(dialect.outside_memdex())),
        };
        let select = ast::select_values(row, filter);
        let source = ast::query(SetExpr::Select(Box::new(select)));
        let insert = insert_statement(ast::object_name(q, &changes.table), columns.clone(), source, None);
        let trigger_event = match event {
            Event::Insert => TriggerEvent::Insert,
            Event::Update => TriggerEvent::Update(Vec::new()),
            Event::Delete => TriggerEvent::Delete,
        };
        let trigger = ast::Trigger {
            name: ast::object_name(q, &shape.trigger_name(&model.table, event)),
            table: ast::object_name(q, &model.table),
            event: trigger_event,
            when,
        };
        statements.extend(dialect.capture_trigger(trigger, Statement::Insert(insert)));
    }
    statements.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Type;

    fn changes() -> Schema {
        Schema::new("MemdexChanges", "memdex_changes")
            .column("id", Type::Int, false)
            .column("table_name", Type::Text, false)
            .column("shape", Type::Text, false)
            .column("old_image", Type::Text, true)
            .column("new_image", Type::Text, true)
            .key("id")
    }

    fn item() -> Schema {
        Schema::new("Item", "item")
            .column("id", Type::Int, false)
            .column("category_id", Type::Int, false)
            .column("label", Type::Text, false)
            .column("seen", Type::Timestamp, true)
            .column("tag", Type::Bytes, true)
            .key("id")
            .index(&["category_id"], None)
            .index(&["seen", "tag"], None)
    }

    #[test]
    fn capture_sql_on_every_dialect() {
        for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            let mut all = create_changes_table(d, &changes());
            all.extend(capture_triggers(d, &item(), &changes()));
            insta::assert_snapshot!(format!("capture_{d:?}"), all.join(";\n"));
        }
    }
}
