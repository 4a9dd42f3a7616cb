//! `CREATE TABLE` / `CREATE INDEX` and the write statements (`INSERT`, `UPDATE`,
//! `DELETE`), built as sqlparser statements.

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder;
use sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, ColumnDef, ColumnOption, ColumnOptionDef, CreateIndex, Delete,
    Expr as SqlExpr, FromTable, IndexColumn, Insert, ObjectName, OrderByExpr, OrderByOptions, Parens,
    PrimaryKeyConstraint, SetExpr, Statement, TableObject, Update, Values,
};

use super::ast::{self, binary, ident};
use super::emit::Emitter;
use super::{Dialect, SqlQuery, finish};
use crate::schema::Schema;
use crate::value::Value;

/// `CREATE TABLE IF NOT EXISTS …` (key as primary key, NOT NULL on non-Option
/// columns) and one `CREATE INDEX IF NOT EXISTS` per declared index (a prefix
/// index is a plain index on the column). MySQL has no `IF NOT EXISTS` for indexes:
/// emit plain `CREATE INDEX` there.
pub fn create_table(d: Dialect, schema: &Schema) -> Vec<String> {
    let dialect = d.imp();
    let q = dialect.quote();
    let columns = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let primary_key = i == schema.key;
            let mut options = Vec::new();
            if !c.nullable || primary_key {
                options.push(ColumnOptionDef { name: None, option: ColumnOption::NotNull });
            }
            if primary_key {
                options.push(ColumnOptionDef {
                    name: None,
                    option: ColumnOption::PrimaryKey(PrimaryKeyConstraint {
                        name: None,
                        index_name: None,
                        index_type: None,
                        columns: Vec::new(),
                        include: Vec::new(),
                        index_options: Vec::new(),
                        characteristics: None,
                    }),
                });
            }
            ColumnDef { name: ident(q, &c.name), data_type: dialect.column_type(c.ty, primary_key), options }
        })
        .collect();
    let table =
        CreateTableBuilder::new(ast::object_name(q, &schema.table)).if_not_exists(true).columns(columns).build();
    let mut out = vec![Statement::CreateTable(table).to_string()];

    for ix in &schema.indexes {
        let names: Vec<&str> = ix.columns.iter().map(|&c| schema.columns[c].name.as_str()).collect();
        let index_name = format!("{}_{}_idx", schema.table, names.join("_"));
        let columns = ix
            .columns
            .iter()
            .map(|&c| {
                let col = &schema.columns[c];
                IndexColumn {
                    column: OrderByExpr {
                        expr: dialect.index_part(ident(q, &col.name), col.ty),
                        options: OrderByOptions { sort: None, nulls_first: None },
                        with_fill: None,
                    },
                    operator_class: None,
                }
            })
            .collect();
        let index = CreateIndex {
            name: Some(ObjectName::from(vec![ident(q, &index_name)])),
            table_name: ast::object_name(q, &schema.table),
            using: None,
            columns,
            unique: false,
            concurrently: false,
            r#async: false,
            if_not_exists: dialect.index_if_not_exists(),
            include: Vec::new(),
            nulls_distinct: None,
            with: Vec::new(),
            predicate: None,
            index_options: Vec::new(),
            alter_options: Vec::new(),
        };
        out.push(Statement::CreateIndex(index).to_string());
    }
    out
}

/// `INSERT INTO t (all columns) VALUES (…)`; `row` in schema column order.
pub fn insert(d: Dialect, schema: &Schema, row: &[Value]) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let q = e.dialect.quote();
    let columns = schema.columns.iter().map(|c| ObjectName::from(vec![ident(q, &c.name)])).collect();
    let values: Vec<SqlExpr> = row.iter().map(|v| e.bind(v.clone())).collect();
    let source = ast::query(SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: vec![Parens {
            opening_token: AttachedToken::empty(),
            content: values,
            closing_token: AttachedToken::empty(),
        }],
    }));
    let statement = Insert {
        insert_token: AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        or: None,
        ignore: false,
        into: true,
        table: TableObject::TableName(e.table()),
        table_alias: None,
        columns,
        by_name: false,
        overwrite: false,
        source: Some(Box::new(source)),
        assignments: Vec::new(),
        partitioned: None,
        after_columns: Vec::new(),
        overriding: None,
        has_table_keyword: false,
        on: None,
        returning: None,
        output: None,
        replace_into: false,
        priority: None,
        insert_alias: None,
        settings: None,
        format_clause: None,
        multi_table_insert_type: None,
        multi_table_into_clauses: Vec::new(),
        multi_table_when_clauses: Vec::new(),
        multi_table_else_clause: None,
    };
    finish(Statement::Insert(statement), e)
}

/// `key = ?` for the schema's key.
fn key_equals(e: &mut Emitter<'_>, key: &Value) -> SqlExpr {
    let col = e.column(e.schema.key);
    let ph = e.bind(key.clone());
    binary(col, BinaryOperator::Eq, ph)
}

/// `UPDATE t SET <every non-key column> = ? WHERE key = ?`; `row` in schema order.
pub fn update(d: Dialect, schema: &Schema, row: &[Value]) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let q = e.dialect.quote();
    let mut assignments = Vec::new();
    for (i, (c, v)) in schema.columns.iter().zip(row).enumerate() {
        if i != schema.key {
            let value = e.bind(v.clone());
            assignments.push(Assignment {
                target: AssignmentTarget::ColumnName(ObjectName::from(vec![ident(q, &c.name)])),
                value,
            });
        }
    }
    let key = row.get(schema.key).cloned().unwrap_or(Value::Null);
    let selection = key_equals(&mut e, &key);
    let statement = Update {
        update_token: AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        table: ast::table(e.table()),
        on_cluster: None,
        assignments,
        from: None,
        selection: Some(selection),
        returning: None,
        output: None,
        or: None,
        order_by: Vec::new(),
        limit: None,
        settings: None,
    };
    finish(Statement::Update(statement), e)
}

/// `DELETE FROM t WHERE key = ?`.
pub fn delete(d: Dialect, schema: &Schema, key: &Value) -> SqlQuery {
    let mut e = Emitter::without_params(d.imp(), schema);
    let selection = key_equals(&mut e, key);
    let statement = delete_statement(&e, selection);
    finish(statement, e)
}

/// `DELETE FROM t WHERE <selection>`.
pub(super) fn delete_statement(e: &Emitter<'_>, selection: SqlExpr) -> Statement {
    Statement::Delete(Delete {
        delete_token: AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        tables: Vec::new(),
        from: FromTable::WithFromKeyword(vec![ast::table(e.table())]),
        on_cluster: None,
        using: None,
        selection: Some(selection),
        returning: None,
        output: None,
        order_by: Vec::new(),
        limit: None,
        settings: None,
    })
}
