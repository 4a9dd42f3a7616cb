//! The databases on their own: the same query on PostgreSQL and MariaDB (prepared
//! statement, B-tree index on `category_id`) and on SQLite in memory, rows decoded
//! into the same struct memdex returns. Also the plain PostgreSQL update that memdex's write
//! path is compared with.

use postgres::{Client, NoTls, Statement};
use rusqlite::Connection;

use super::data::Row;

macro_rules! columns {
    () => {
        "id, category_id, name, price, deleted_at, description"
    };
}
const COLUMNS: &str = columns!();
const SQLITE_BY_CATEGORY: &str = concat!("SELECT ", columns!(), " FROM plain_item WHERE category_id = ?1");

/// PostgreSQL through the `postgres` crate, statements prepared once.
pub struct PgBaseline {
    client: Client,
    table: String,
    by_category: Statement,
    update_price: Statement,
    insert_row: Statement,
    delete_row: Statement,
}

impl std::fmt::Debug for PgBaseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBaseline").finish_non_exhaustive()
    }
}

impl PgBaseline {
    /// Creates and fills `plain_item` (dropping an older one), indexes and analyses it.
    /// Its rows go in in id order, a category's rows next to each other on the heap.
    pub fn setup(params: &str, rows: &[Row]) -> Result<PgBaseline, postgres::Error> {
        PgBaseline::setup_table(params, "plain_item", rows)
    }

    /// The realistic peer: `scattered_item`, 10,000 rows in 100 categories, row `id`
    /// in category `first + id % 100`, so that one category's 100 rows lie on 100
    /// different heap pages and the index scan visits each (as rows written over
    /// months do). Returns the baseline and the category to query.
    pub fn setup_scattered(params: &str, first: i64) -> Result<(PgBaseline, i64), postgres::Error> {
        let rows: Vec<Row> = (1..=10_000).map(|id| super::data::row(1_000_000 + id, first + id % 100)).collect();
        Ok((PgBaseline::setup_table(params, "scattered_item", &rows)?, first))
    }

    /// A connection to an existing table of the benchmark's columns (one memdex
    /// created), as a writer outside memdex.
    pub fn on_table(params: &str, table: &str) -> Result<PgBaseline, postgres::Error> {
        PgBaseline::prepare(Client::connect(params, NoTls)?, table)
    }

    /// Another connection to a table a `setup` made (one per client thread).
    pub fn connect(&self, params: &str) -> Result<PgBaseline, postgres::Error> {
        PgBaseline::prepare(Client::connect(params, NoTls)?, &self.table)
    }

    fn prepare(mut client: Client, table: &str) -> Result<PgBaseline, postgres::Error> {
        let by_category = client.prepare(&format!("SELECT {COLUMNS} FROM {table} WHERE category_id = $1"))?;
        let update_price = client.prepare(&format!("UPDATE {table} SET price = $2 WHERE id = $1"))?;
        let insert_row = client.prepare(&format!("INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))?;
        let delete_row = client.prepare(&format!("DELETE FROM {table} WHERE id = $1"))?;
        Ok(PgBaseline { client, table: table.to_owned(), by_category, update_price, insert_row, delete_row })
    }

    fn setup_table(params: &str, table: &str, rows: &[Row]) -> Result<PgBaseline, postgres::Error> {
        let mut client = Client::connect(params, NoTls)?;
        client.batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (id BIGINT PRIMARY KEY, category_id BIGINT NOT NULL, name TEXT NOT NULL,
                 price DOUBLE PRECISION NOT NULL, deleted_at BIGINT, description TEXT NOT NULL);
             CREATE INDEX {table}_category ON {table} (category_id);"
        ))?;
        let mut tx = client.transaction()?;
        let insert = tx.prepare(&format!("INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))?;
        for r in rows {
            tx.execute(&insert, &[&r.id, &r.category_id, &r.name, &r.price, &r.deleted_at, &r.description])?;
        }
        tx.commit()?;
        client.batch_execute(&format!("VACUUM ANALYZE {table}"))?;
        PgBaseline::prepare(client, table)
    }

    pub fn by_category(&mut self, category: i64) -> Result<Vec<Row>, postgres::Error> {
        let rows = self.client.query(&self.by_category, &[&category])?;
        rows.iter()
            .map(|r| {
                Ok(Row {
                    id: r.try_get(0)?,
                    category_id: r.try_get(1)?,
                    name: r.try_get(2)?,
                    price: r.try_get(3)?,
                    deleted_at: r.try_get(4)?,
                    description: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// One autocommitted `UPDATE`: one round trip.
    pub fn update_price(&mut self, id: i64, price: f64) -> Result<u64, postgres::Error> {
        self.client.execute(&self.update_price, &[&id, &price])
    }

    /// The same `UPDATE` in a transaction of its own, as an application that writes
    /// in transactions sends it: BEGIN, the UPDATE, COMMIT — three round trips.
    pub fn update_price_in_transaction(&mut self, id: i64, price: f64) -> Result<u64, postgres::Error> {
        let mut tx = self.client.transaction()?;
        let updated = tx.execute(&self.update_price, &[&id, &price])?;
        tx.commit()?;
        Ok(updated)
    }

    /// One autocommitted `INSERT` of `r`: one round trip.
    pub fn insert(&mut self, r: &Row) -> Result<u64, postgres::Error> {
        self.client
            .execute(&self.insert_row, &[&r.id, &r.category_id, &r.name, &r.price, &r.deleted_at, &r.description])
    }

    /// The same `INSERT` in a transaction of its own: BEGIN, the INSERT, COMMIT.
    pub fn insert_in_transaction(&mut self, r: &Row) -> Result<u64, postgres::Error> {
        let mut tx = self.client.transaction()?;
        let inserted =
            tx.execute(&self.insert_row, &[&r.id, &r.category_id, &r.name, &r.price, &r.deleted_at, &r.description])?;
        tx.commit()?;
        Ok(inserted)
    }

    /// One autocommitted `DELETE` of the row with this id: one round trip.
    pub fn delete(&mut self, id: i64) -> Result<u64, postgres::Error> {
        self.client.execute(&self.delete_row, &[&id])
    }

    /// The same `DELETE` in a transaction of its own: BEGIN, the DELETE, COMMIT.
    pub fn delete_in_transaction(&mut self, id: i64) -> Result<u64, postgres::Error> {
        let mut tx = self.client.transaction()?;
        let deleted = tx.execute(&self.delete_row, &[&id])?;
        tx.commit()?;
        Ok(deleted)
    }

    /// The whole query plan, to show the index is used.
    pub fn explain(&mut self, category: i64) -> Result<String, postgres::Error> {
        let rows = self
            .client
            .query(&format!("EXPLAIN SELECT {COLUMNS} FROM {} WHERE category_id = {category}", self.table), &[])?;
        Ok(rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect::<Vec<_>>().join("\n"))
    }
}

/// MariaDB through the `mysql` crate (binary protocol), the statement prepared once.
/// InnoDB keeps rows in primary-key order, so on the scattered table (ids of one
/// category 100 apart) a category's rows lie on different pages, each found through
/// the secondary index, then the primary key.
pub struct MySqlBaseline {
    conn: mysql::Conn,
    table: String,
    by_category: mysql::Statement,
}

impl std::fmt::Debug for MySqlBaseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlBaseline").finish_non_exhaustive()
    }
}

impl MySqlBaseline {
    /// The same realistic table as [`PgBaseline::setup_scattered`]'s (10,000 rows,
    /// 100 categories, row `id` in category `first + id % 100`). Returns the baseline
    /// and the category to query.
    pub fn setup_scattered(url: &str, first: i64) -> Result<(MySqlBaseline, i64), mysql::Error> {
        let rows: Vec<Row> = (1..=10_000).map(|id| super::data::row(1_000_000 + id, first + id % 100)).collect();
        Ok((MySqlBaseline::setup_table(url, "scattered_item", &rows)?, first))
    }

    /// Creates and fills `table` (dropping an older one), indexes and analyses it.
    fn setup_table(url: &str, table: &str, rows: &[Row]) -> Result<MySqlBaseline, mysql::Error> {
        use mysql::prelude::Queryable;
        let mut conn = mysql::Conn::new(mysql::Opts::from_url(url)?)?;
        conn.query_drop(format!("DROP TABLE IF EXISTS {table}"))?;
        conn.query_drop(format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, category_id BIGINT NOT NULL, name LONGTEXT NOT NULL,
                 price DOUBLE NOT NULL, deleted_at BIGINT, description LONGTEXT NOT NULL,
                 INDEX {table}_category (category_id)) CHARACTER SET utf8mb4"
        ))?;
        let mut tx = conn.start_transaction(mysql::TxOpts::default())?;
        let insert = tx.prep(format!("INSERT INTO {table} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"))?;
        for r in rows {
            tx.exec_drop(&insert, (r.id, r.category_id, &r.name, r.price, r.deleted_at, &r.description))?;
        }
        tx.commit()?;
        conn.query_drop(format!("ANALYZE TABLE {table}"))?;
        let by_category = conn.prep(format!("SELECT {COLUMNS} FROM {table} WHERE category_id = ?"))?;
        Ok(MySqlBaseline { conn, table: table.to_owned(), by_category })
    }

    pub fn by_category(&mut self, category: i64) -> Result<Vec<Row>, mysql::Error> {
        use mysql::prelude::Queryable;
        let rows: Vec<(i64, i64, String, f64, Option<i64>, String)> = self.conn.exec(&self.by_category, (category,))?;
        Ok(rows
            .into_iter()
            .map(|(id, category_id, name, price, deleted_at, description)| Row {
                id,
                category_id,
                name,
                price,
                deleted_at,
                description,
            })
            .collect())
    }

    /// The access the plan takes (`ref` through an index).
    pub fn explain(&mut self, category: i64) -> Result<String, mysql::Error> {
        use mysql::prelude::Queryable;
        let query = format!("EXPLAIN SELECT {COLUMNS} FROM {} WHERE category_id = ?", self.table);
        let rows: Vec<mysql::Row> = self.conn.exec(query, (category,))?;
        Ok(rows
            .iter()
            .map(|r| {
                let get = |name: &str| r.get_opt::<Option<String>, _>(name).and_then(Result::ok).flatten();
                format!(
                    "type {}, key {}",
                    get("type").unwrap_or_default(),
                    get("key").unwrap_or_else(|| "(none)".into())
                )
            })
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// SQLite in memory through `rusqlite`, statement cached.
#[derive(Debug)]
pub struct SqliteBaseline {
    conn: Connection,
}

impl SqliteBaseline {
    pub fn setup(rows: &[Row]) -> rusqlite::Result<SqliteBaseline> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE plain_item (id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL, name TEXT NOT NULL,
                 price REAL NOT NULL, deleted_at INTEGER, description TEXT NOT NULL);
             CREATE INDEX plain_item_category ON plain_item (category_id);",
        )?;
        let tx = conn.transaction()?;
        {
            let mut insert =
                tx.prepare(&format!("INSERT INTO plain_item ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"))?;
            for r in rows {
                insert.execute(rusqlite::params![r.id, r.category_id, r.name, r.price, r.deleted_at, r.description])?;
            }
        }
        tx.commit()?;
        conn.execute_batch("ANALYZE")?;
        Ok(SqliteBaseline { conn })
    }

    pub fn by_category(&self, category: i64) -> rusqlite::Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(SQLITE_BY_CATEGORY)?;
        let rows = stmt.query_map([category], |r| {
            Ok(Row {
                id: r.get(0)?,
                category_id: r.get(1)?,
                name: r.get(2)?,
                price: r.get(3)?,
                deleted_at: r.get(4)?,
                description: r.get(5)?,
            })
        })?;
        rows.collect()
    }
}
