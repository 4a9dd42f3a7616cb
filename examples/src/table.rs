//! Rows printed as an aligned table, one column per field of the model, for the
//! LINQ example and the query console.

use std::io::{self, Write};

use memdex::{Model, Value};

/// The rows as values, one per column in schema order.
pub fn values_of<T: Model>(rows: &[T]) -> Vec<Vec<Value>> {
    let width = T::schema().columns.len();
    rows.iter().map(|row| (0..width).map(|column| row.column_value(column)).collect()).collect()
}

/// The field names of a model, in schema order: a table's header.
pub fn header_of<T: Model>() -> Vec<&'static str> {
    T::schema().columns.iter().map(|column| column.field.as_str()).collect()
}

/// Writes `rows` under `header`, each line starting with `indent`. Numbers are
/// right-aligned, everything else left-aligned; text is written without quotes
/// and NULL as `None`. At most `max_rows` rows are written, then a line saying how
/// many were left out.
///
/// # Errors
///
/// The writer's.
pub fn write(
    out: &mut impl Write,
    indent: &str,
    header: &[&str],
    rows: &[Vec<Value>],
    max_rows: usize,
) -> io::Result<()> {
    let shown = &rows[..rows.len().min(max_rows)];
    let cells: Vec<Vec<String>> = shown.iter().map(|row| row.iter().map(cell).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|name| name.chars().count()).collect();
    for row in &cells {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..header.len())
        .map(|column| shown.iter().all(|row| matches!(row.get(column), Some(Value::Int(_) | Value::Float(_)))))
        .collect();
    let line = |out: &mut dyn Write, texts: &[String]| -> io::Result<()> {
        let mut padded = Vec::with_capacity(texts.len());
        for ((text, width), right) in texts.iter().zip(&widths).zip(&numeric) {
            padded.push(if *right { format!("{text:>width$}") } else { format!("{text:<width$}") });
        }
        writeln!(out, "{indent}{}", padded.join("  ").trim_end())
    };
    line(out, &header.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>())?;
    for row in &cells {
        line(out, row)?;
    }
    if rows.len() > shown.len() {
        writeln!(out, "{indent}… and {} more", rows.len() - shown.len())?;
    }
    Ok(())
}

/// One value as a table cell: text without its quotes, everything else as the
/// query language spells it (`None`, `True`, `19.5`).
fn cell(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(header: &[&str], rows: &[Vec<Value>], max_rows: usize) -> String {
        let mut out = Vec::new();
        write(&mut out, "> ", header, rows, max_rows).expect("a Vec takes every write");
        String::from_utf8(out).expect("the table is UTF-8")
    }

    #[test]
    fn numbers_align_right_and_text_left() {
        let rows = vec![
            vec![Value::Int(7), Value::Text("lamp".into()), Value::Float(19.5)],
            vec![Value::Int(1111), Value::Text("a long name".into()), Value::Null],
        ];
        let expected = "\
>   id  name         price
>    7  lamp         19.5
> 1111  a long name  None
";
        assert_eq!(table(&["id", "name", "price"], &rows, 10), expected);
    }

    #[test]
    fn rows_beyond_the_limit_are_counted_not_written() {
        let rows: Vec<Vec<Value>> = (1..=5).map(|i| vec![Value::Int(i)]).collect();
        assert_eq!(table(&["n"], &rows, 2), "> n\n> 1\n> 2\n> … and 3 more\n");
    }
}
