//! The shop's models and sample data, shared by the shop, the LINQ-post queries and
//! the query console so that all three talk about the same tables: items by
//! category, a paged cart, customers with a prefix index, and a baseball roster.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use memdex::{Model, Store};
use serde::{Deserialize, Serialize};

/// An item for sale, listed by category (the memcached-indices post's `Item`).
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "item")]
pub struct Item {
    /// The item's id (`Item:1111` in the post).
    #[memdex(key)]
    pub id: i64,
    /// The category; its index nodes are the post's `Item:CategoryID=5`.
    #[memdex(index)]
    pub category_id: i64,
    /// What the item is called.
    pub name: String,
    /// Its price.
    pub price: f64,
}

/// One line of a cart: the post's `get_items_in_cart(cart_id, limit, offset)` pages
/// these, and one index node on `cart_id` serves every page. The node is ordered by
/// `position` (it keeps each line's position), so a page reads only its own lines.
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "cart_line")]
#[memdex(index(cart_id, order_by = position))]
pub struct CartLine {
    /// The line's id.
    #[memdex(key)]
    pub id: i64,
    /// The cart the line belongs to.
    pub cart_id: i64,
    /// The item on this line.
    pub item_id: i64,
    /// Where the line stands in its cart, for ordering pages.
    pub position: i64,
}

/// A customer (the LINQ post's `Customer`, found by the first letter of the first
/// name through a prefix index).
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "customer")]
pub struct Customer {
    /// The customer's id.
    #[memdex(key)]
    pub id: i64,
    /// The first name; its nodes hold the ids whose first name starts with the same
    /// character, so `starts_with("m")` reads one node.
    #[memdex(index(prefix = 1))]
    pub first_name: String,
    /// The last name.
    pub last_name: String,
}

/// A player (the LINQ post's `Master` table of baseball statistics).
#[derive(Model, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[memdex(table = "master")]
pub struct Master {
    /// The player's id.
    #[memdex(key)]
    pub id: i64,
    /// The team, indexed so that a team's aggregate reads through the cache.
    #[memdex(index)]
    pub team: String,
    /// The player's name.
    pub name: String,
    /// Runs scored.
    pub runs: i64,
}

/// Creates the four tables (and their indexes) when they do not exist.
///
/// # Errors
///
/// The database's error when a table cannot be created.
pub fn migrate(store: &Store) -> Result<(), memdex::Error> {
    store.migrate::<Item>()?;
    store.migrate::<CartLine>()?;
    store.migrate::<Customer>()?;
    store.migrate::<Master>()?;
    Ok(())
}

/// What [`insert_sample_data`] writes, in the words the shop prints.
pub const SAMPLE_DATA: &str = "204 items, a 1,000-line cart, 5 customers, 4 players";

/// Writes the sample data in one transaction: the post's four items in category 5
/// (1111 to 4444), 200 more in categories 10 to 19, a 1,000-line cart 42, five
/// customers (three first names start with a lower-case "m", one with "M") and
/// four players on two teams.
///
/// # Errors
///
/// The database's error, for instance a key that exists already (the data is
/// meant for empty tables).
pub fn insert_sample_data(store: &Store) -> Result<(), memdex::Error> {
    store.transaction(|tx| {
        for (id, name, price) in
            [(1111, "lamp", 19.5), (2222, "desk", 129.0), (3333, "chair", 49.0), (4444, "rug", 80.0)]
        {
            tx.insert(&Item { id, category_id: 5, name: name.into(), price })?;
        }
        for id in 1..=200 {
            tx.insert(&Item { id, category_id: 10 + id % 10, name: format!("item {id}"), price: id as f64 })?;
        }
        for position in 0..1000 {
            tx.insert(&CartLine { id: 10_000 + position, cart_id: 42, item_id: position % 200 + 1, position })?;
        }
        for (id, first, last) in
            [(1, "mira", "Holm"), (2, "Mads", "Berg"), (3, "mikkel", "Dahl"), (4, "nora", "Lie"), (5, "max", "Ek")]
        {
            tx.insert(&Customer { id, first_name: first.into(), last_name: last.into() })?;
        }
        for (id, team, name, runs) in
            [(1, "SEA", "Ichiro", 127), (2, "SEA", "Edgar", 102), (3, "NYY", "Derek", 110), (4, "NYY", "Bernie", 98)]
        {
            tx.insert(&Master { id, team: team.into(), name: name.into(), runs })?;
        }
        Ok(())
    })
}

/// The memcached server the shop and the LINQ example use: `MEMDEX_MEMCACHED`
/// (`host:port`), else `127.0.0.1:11211`, and only when something accepts a TCP
/// connection there within 150 ms — otherwise the caller uses the in-process cache.
pub fn memcached_address() -> Option<SocketAddr> {
    let wanted = std::env::var("MEMDEX_MEMCACHED").unwrap_or_else(|_| "127.0.0.1:11211".into());
    let addr = wanted.to_socket_addrs().ok()?.next()?;
    TcpStream::connect_timeout(&addr, Duration::from_millis(150)).ok().map(|_| addr)
}
