//! The shop service over real HTTP: the test starts it on a free loopback port and
//! drives it with an HTTP client, on the embedded default (SQLite in memory + the
//! in-process cache) and on SQLite with a real memcached started for the test.

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use memdex::{Store, StoreBuilder};
use memdex_examples::service::{self, ReadPath, Running, Seed, Shop};
use memdex_examples::shop_models::Item;
use memdex_tests::servers::memcached::MemcachedServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Small enough to seed in a blink: 60 items in 6 categories, 3 carts of 25 lines.
const SEED: Seed = Seed { items: 60, categories: 6, carts: 3, lines_per_cart: 25 };

/// A client of one running service.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(running: &Running) -> Client {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Client { http, base: running.url() }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        read(response).await
    }

    /// A GET of `path` with `pairs` form-encoded into the query string.
    async fn get_with(&self, path: &str, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).query(pairs).send().await.unwrap();
        read(response).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self.http.request(method, format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        read(response).await
    }

    async fn stats(&self) -> Value {
        let (status, stats) = self.get("/stats").await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        stats
    }
}

/// The status and the JSON body (`null` for an empty one, as a 204 has).
async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats[name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// Cache hits of every kind: nodes, objects, and objects kept in this process.
fn hits(stats: &Value) -> u64 {
    counter(stats, "node_hits") + counter(stats, "object_hits") + counter(stats, "near_hits")
}

/// The ids of a listing's `items` (or a text query's `rows`).
fn ids(body: &Value, field: &str) -> Vec<i64> {
    body[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

/// The ids the seed puts in `category`, ascending.
fn seeded_ids(category: i64) -> Vec<i64> {
    (1..=SEED.items).filter(|&id| SEED.category_of(id) == category).collect()
}

/// An error response: its status, its `error` word, and a message mentioning `needle`.
fn assert_error(reply: &(StatusCode, Value), status: StatusCode, kind: &str, needle: &str) {
    let (got, body) = reply;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], kind, "{body}");
    let message = body["message"].as_str().unwrap_or_else(|| panic!("no message in {body}"));
    assert!(message.contains(needle), "message {message:?} does not mention {needle:?}");
}

/// Builds the store, seeds it and starts the service on a free port, both read
/// paths over the one store.
async fn start(builder: StoreBuilder) -> (Running, Running) {
    let store = builder.build_async().await.unwrap();
    service::migrate(&store).await.unwrap();
    assert!(service::seed(&store, &SEED).await.unwrap(), "a fresh store is seeded");
    let cached =
        service::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap(), Shop::new(store.clone(), ReadPath::Cache));
    let direct = service::spawn(TcpListener::bind("127.0.0.1:0").await.unwrap(), Shop::new(store, ReadPath::Database));
    (cached.unwrap(), direct.unwrap())
}

async fn reads_by_id_and_category(client: &Client) {
    let (status, body) = client.get("/items/7").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_value::<Item>(body).unwrap(), SEED.item(7));
    assert_error(&client.get("/items/999").await, StatusCode::NOT_FOUND, "not_found", "999");
    assert_error(&client.get("/items/seven").await, StatusCode::BAD_REQUEST, "bad_request", "seven");

    let (status, body) = client.get("/categories/3/items?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body, "items"), seeded_ids(3));
    let (_, page) = client.get("/categories/3/items?limit=3&offset=2").await;
    assert_eq!(ids(&page, "items"), seeded_ids(3)[2..5]);
    assert_error(&client.get("/categories/3/items?limit=0").await, StatusCode::BAD_REQUEST, "bad_request", "limit");

    let (status, summary) = client.get("/categories/3").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["items"], seeded_ids(3).len());
    let prices: Vec<f64> = seeded_ids(3).iter().map(|&id| SEED.item(id).price).collect();
    let average = summary["average_price"].as_f64().unwrap();
    assert!((average - prices.iter().sum::<f64>() / prices.len() as f64).abs() < 1e-9, "{summary}");

    let (status, cart) = client.get("/carts/2?limit=10&offset=10").await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    let positions: Vec<i64> =
        cart["lines"].as_array().unwrap().iter().map(|l| l["position"].as_i64().unwrap()).collect();
    assert_eq!(positions, (10..20).collect::<Vec<_>>());
}

async fn text_queries(client: &Client) {
    let q = "lambda c: c.category_id == cat and c.price > 20";
    let (status, body) = client.get_with("/query", &[("q", q), ("cat", "3")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected: Vec<i64> = seeded_ids(3).into_iter().filter(|&id| SEED.item(id).price > 20.0).collect();
    assert!(!expected.is_empty());
    assert_eq!(ids(&body, "rows"), expected);
    assert_eq!(body["count"], expected.len());

    let (status, body) =
        client.get_with("/query", &[("q", "lambda c: c.category_id in cats"), ("cats", "[1, 2]")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut expected = [seeded_ids(1), seeded_ids(2)].concat();
    expected.sort_unstable();
    assert_eq!(ids(&body, "rows"), expected);

    let (status, body) = client.get_with("/query", &[("q", "lambda p: p.team == 'SEA'"), ("model", "master")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body, "rows"), [1, 2]);

    let (status, plan) =
        client.get_with("/explain", &[("q", "lambda c: c.category_id in (1, 2) and c.price > 3")]).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["hot_round_trips"], 2, "{plan}");
    assert_eq!(plan["disjuncts"][0]["access"], "index category_id", "{plan}");
    assert_eq!(plan["disjuncts"][0]["residual"], "c.price > 3.0", "{plan}");
    assert!(plan["sql"].as_str().unwrap().starts_with("SELECT"), "{plan}");
}

async fn bad_queries(client: &Client) {
    let malformed = client.get_with("/query", &[("q", "lambda c: c.price >")]).await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "bad_query", "syntax error");
    assert!(malformed.1["message"].as_str().unwrap().contains('^'), "the message points at the error: {}", malformed.1);
    let unindexable = client.get_with("/query", &[("q", "lambda c: c.price > 3")]).await;
    assert_error(&unindexable, StatusCode::BAD_REQUEST, "bad_query", "no index of Item serves");
    let explained = client.get_with("/explain", &[("q", "lambda c: c.price > 3")]).await;
    assert_error(&explained, StatusCode::BAD_REQUEST, "bad_query", "no index of Item serves");
    let unbound = client.get_with("/query", &[("q", "lambda c: c.category_id == cat")]).await;
    assert_error(&unbound, StatusCode::BAD_REQUEST, "bad_query", "cat");
    assert_error(&client.get("/query").await, StatusCode::BAD_REQUEST, "bad_query", "missing q");
    let model = client.get_with("/query", &[("q", "lambda c: c.id == 1"), ("model", "nope")]).await;
    assert_error(&model, StatusCode::BAD_REQUEST, "bad_request", "no model `nope`");
    // Hostile texts: each is a 400 with a message, and the service keeps answering.
    for text in
        ["", "lambda", "lambda c: c.nope == 1", "lambda c: c.id == 'x'", "lambda c: (((", "lambda c: c.id == 1 ;"]
    {
        let (status, body) = client.get_with("/query", &[("q", text)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{text:?}: {body}");
    }
}

/// A move seen by the next reads: the item appears in its new category and no
/// longer in its old one, whose node was cached before the move.
async fn move_then_read(client: &Client) {
    let (old, new) = (SEED.category_of(7), SEED.category_of(8));
    let (_, before) = client.get(&format!("/categories/{old}/items?limit=500")).await;
    assert!(ids(&before, "items").contains(&7));
    let (_, before) = client.get(&format!("/categories/{new}/items?limit=500")).await;
    assert!(!ids(&before, "items").contains(&7));

    let (status, moved) = client.send(reqwest::Method::POST, "/items/7/move", json!({ "category_id": new })).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["category_id"], new);

    let (_, after) = client.get(&format!("/categories/{new}/items?limit=500")).await;
    assert!(ids(&after, "items").contains(&7), "7 missing from its new category {new}: {after}");
    let (_, after) = client.get(&format!("/categories/{old}/items?limit=500")).await;
    assert!(!ids(&after, "items").contains(&7), "7 still listed in its old category {old}: {after}");
    let (_, item) = client.get("/items/7").await;
    assert_eq!(item["category_id"], new);
    let (status, _) = client.send(reqwest::Method::POST, "/items/999/move", json!({ "category_id": 1 })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn other_writes(client: &Client) {
    let new_item = json!({ "id": 500, "category_id": 2, "name": "lamp", "price": 19.5 });
    let (status, body) = client.send(reqwest::Method::POST, "/items", new_item.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, listed) = client.get("/categories/2/items?limit=500").await;
    assert!(ids(&listed, "items").contains(&500), "{listed}");
    let duplicate = client.send(reqwest::Method::POST, "/items", new_item).await;
    assert_error(&duplicate, StatusCode::CONFLICT, "conflict", "unique");
    let broken = client.send(reqwest::Method::POST, "/items", json!({ "id": 501 })).await;
    assert_error(&broken, StatusCode::BAD_REQUEST, "bad_request", "category_id");

    let fields = json!({ "category_id": 2, "name": "brass lamp", "price": 24.0 });
    let (status, _) = client.send(reqwest::Method::PUT, "/items/500", fields.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, item) = client.get("/items/500").await;
    assert_eq!(item["name"], "brass lamp");
    assert_error(
        &client.send(reqwest::Method::PUT, "/items/777", fields).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "777",
    );

    let (status, _) = client.send(reqwest::Method::DELETE, "/items/500", Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(client.get("/items/500").await.0, StatusCode::NOT_FOUND);
    assert_eq!(client.send(reqwest::Method::DELETE, "/items/500", Value::Null).await.0, StatusCode::NOT_FOUND);
}

/// A repeated read is answered from the cache: hits grow, the database is not asked.
async fn stats_reflect_hits(client: &Client) {
    for path in ["/items/11", "/categories/5/items?limit=5", "/carts/3?limit=5&offset=20"] {
        assert_eq!(client.get(path).await.0, StatusCode::OK, "{path}");
        let before = client.stats().await;
        assert_eq!(client.get(path).await.0, StatusCode::OK, "{path}");
        let after = client.stats().await;
        assert!(hits(&after) > hits(&before), "{path}: no cache hit counted\nbefore {before}\nafter {after}");
        assert_eq!(
            counter(&after, "db_queries"),
            counter(&before, "db_queries"),
            "{path}: the database was asked again"
        );
    }
    let stats = client.stats().await;
    assert!(counter(&stats, "writes") >= SEED.items as u64, "{stats}");
    assert_eq!(counter(&stats, "cache_errors"), 0, "{stats}");
}

/// The database read path answers the same rows, asks the database every time, and
/// refuses text queries with 501.
async fn database_path(client: &Client, cached: &Client) {
    for path in ["/items/7", "/categories/3/items?limit=4&offset=1", "/carts/1?limit=7&offset=3", "/categories/2"] {
        let (status, body) = client.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, cached.get(path).await.1, "{path}: the two read paths disagree");
    }
    let before = client.stats().await;
    assert_eq!(client.get("/items/9").await.0, StatusCode::OK);
    assert_eq!(counter(&client.stats().await, "db_queries"), counter(&before, "db_queries") + 1);
    let text = client.get_with("/query", &[("q", "lambda c: c.id == 1")]).await;
    assert_error(&text, StatusCode::NOT_IMPLEMENTED, "unsupported", "scan!");
}

/// Runs every check on a store from `builder`, whose description must name `cache`.
async fn scenario(builder: StoreBuilder, cache: &str) {
    // The periodic outbox look-up (every second by default) is a database query of
    // its own; once an hour, it cannot land between two reads whose queries the
    // test counts.
    let builder = builder.outbox(Duration::from_secs(3600), Duration::from_secs(2));
    let (cached, direct) = start(builder).await;
    let client = Client::new(&cached);
    let (_, about) = client.get("/").await;
    assert!(about["store"].as_str().unwrap().contains(cache), "not on {cache}: {about}");
    reads_by_id_and_category(&client).await;
    text_queries(&client).await;
    bad_queries(&client).await;
    move_then_read(&client).await;
    other_writes(&client).await;
    stats_reflect_hits(&client).await;
    database_path(&Client::new(&direct), &client).await;
    direct.stop().await.unwrap();
    cached.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_over_http() {
    scenario(Store::builder().sqlite_in_memory().in_process_cache(), "in-process").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_over_http() {
    let memcached = MemcachedServer::start().expect("memcached starts (is the memcached package installed?)");
    let namespace = format!("service_http_{}", std::process::id());
    scenario(Store::builder().sqlite_in_memory().memcached([memcached.addr()]).namespace(namespace), "memcached").await;
}
