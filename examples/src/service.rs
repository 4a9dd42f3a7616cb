//! The shop as an HTTP service: axum handlers over one [`AsyncStore`], reused by
//! `cargo run --example service`, by the load generator and by the HTTP test.
//!
//! | route | what it answers |
//! |---|---|
//! | `GET /` | which database and cache serve, and how reads are answered |
//! | `GET /items/{id}` | one item (404 when there is none) |
//! | `POST /items` | inserts an item (201; 409 when the id exists) |
//! | `PUT /items/{id}` | replaces an item's fields (404 when there is none) |
//! | `DELETE /items/{id}` | deletes an item (204; 404 when there is none) |
//! | `POST /items/{id}/move` | moves an item to `{"category_id": n}` in a transaction |
//! | `GET /categories/{id}` | the category's item count and average price |
//! | `GET /categories/{id}/items?limit=&offset=` | a page of the category's items, by id |
//! | `GET /carts/{id}?limit=&offset=` | a page of a cart's lines, by position |
//! | `GET /query?q=lambda …&model=item&name=value` | a text query's rows |
//! | `GET /explain?q=lambda …&model=item` | the text query's plan, keys and SQL |
//! | `GET /stats` | the store's counters |
//!
//! Every error is JSON, `{"error": kind, "message": text}`, with a status that
//! says whose fault it is (see [`ApiError`]); no input makes a handler panic.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use memdex::{AsyncStore, Dialect, Explain, Model, Stats, StoreBuilder, Value, scan, select, view};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::shop_models::{CartLine, Customer, Item, Master, memcached_address};

/// How the service answers reads. Writes are the same either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPath {
    /// memdex's index scans: `select!` through the cache, SQL on a miss.
    Cache,
    /// `scan!`: one SQL statement per read, the cache never read — the same
    /// service as it would run without a cache, for the load generator's
    /// comparison. Text queries are refused (501): memdex runs text only through
    /// its index path.
    Database,
}

impl ReadPath {
    /// The word `GET /` and the load generator print.
    pub fn describe(self) -> &'static str {
        match self {
            ReadPath::Cache => "memdex index scans through the cache",
            ReadPath::Database => "scan! on the database for every read (the cache is never read)",
        }
    }
}

/// What every handler shares: the store and how reads are answered.
#[derive(Clone, Debug)]
pub struct Shop {
    store: AsyncStore,
    reads: ReadPath,
}

impl Shop {
    /// The service over `store`, answering reads as `reads` says.
    pub fn new(store: AsyncStore, reads: ReadPath) -> Shop {
        Shop { store, reads }
    }

    /// The store the handlers use (for its stats).
    pub fn store(&self) -> &AsyncStore {
        &self.store
    }
}

/// The service's routes over `shop`.
pub fn router(shop: Shop) -> Router {
    Router::new()
        .route("/", get(about))
        .route("/items", post(create_item))
        .route("/items/{id}", get(get_item).put(replace_item).delete(delete_item))
        .route("/items/{id}/move", post(move_item))
        .route("/categories/{id}", get(category_summary))
        .route("/categories/{id}/items", get(category_items))
        .route("/carts/{id}", get(cart_lines))
        .route("/query", get(text_query))
        .route("/explain", get(explain))
        .route("/stats", get(stats))
        .with_state(shop)
}

// ---------------------------------------------------------------------------
// Errors

/// What a request can fail with, each kind with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A text query that does not parse or check, that no index serves, or whose
    /// parameters are missing or of the wrong type (400).
    #[error("{0}")]
    BadQuery(String),
    /// A malformed path, query string or body, or a value memdex refuses to store (400).
    #[error("{0}")]
    BadRequest(String),
    /// No row with that key (404).
    #[error("{0}")]
    NotFound(String),
    /// The write would duplicate a key or a unique index (409).
    #[error("{0}")]
    Conflict(String),
    /// A route this service's read path does not offer (501).
    #[error("{0}")]
    Unsupported(String),
    /// The database failed or could not be reached (503): retrying may help.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadQuery(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` field of the JSON body: a stable word for programs to match.
    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadQuery(_) => "bad_query",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unsupported(_) => "unsupported",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.kind(), "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

impl From<memdex::Error> for ApiError {
    fn from(error: memdex::Error) -> ApiError {
        if error.is_unique_violation() {
            return ApiError::Conflict(error.to_string());
        }
        match error {
            // The rendered message already has line, column and a caret.
            memdex::Error::Query { rendered, .. } => ApiError::BadQuery(rendered),
            memdex::Error::Unindexable { message } => ApiError::BadQuery(message),
            e @ memdex::Error::Param(_) => ApiError::BadQuery(e.to_string()),
            e @ memdex::Error::NotFound { .. } => ApiError::NotFound(e.to_string()),
            e @ (memdex::Error::NotANumber { .. } | memdex::Error::IndexedTextTooLong(_)) => {
                ApiError::BadRequest(e.to_string())
            }
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// A JSON body whose rejection is an [`ApiError`] (axum's own is plain text).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
struct Body<T>(T);

/// A path parameter whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
struct PathParam<T>(T);

/// A query string whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
struct QueryString<T>(T);

type ApiResult<T> = Result<T, ApiError>;

// ---------------------------------------------------------------------------
// Items

async fn about(State(shop): State<Shop>) -> Json<serde_json::Value> {
    Json(json!({
        "service": "memdex shop",
        "store": shop.store.describe(),
        "reads": shop.reads.describe(),
    }))
}

/// The item with key `id`, read the way `shop` reads.
async fn find_item(shop: &Shop, id: i64) -> ApiResult<Item> {
    let rows = match shop.reads {
        ReadPath::Cache => select!(Item, |c| c.id == id).fetch_async(&shop.store).await?,
        ReadPath::Database => scan!(Item, |c| c.id == id).fetch_async(&shop.store).await?,
    };
    rows.into_iter().next().ok_or_else(|| ApiError::NotFound(format!("no item with id {id}")))
}

async fn get_item(State(shop): State<Shop>, PathParam(id): PathParam<i64>) -> ApiResult<Json<Item>> {
    Ok(Json(find_item(&shop, id).await?))
}

async fn create_item(State(shop): State<Shop>, Body(item): Body<Item>) -> ApiResult<(StatusCode, Json<Item>)> {
    shop.store.insert(&item).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// An item's fields other than its key, as `PUT /items/{id}` takes them.
#[derive(Debug, Deserialize)]
struct ItemFields {
    category_id: i64,
    name: String,
    price: f64,
}

async fn replace_item(
    State(shop): State<Shop>,
    PathParam(id): PathParam<i64>,
    Body(fields): Body<ItemFields>,
) -> ApiResult<Json<Item>> {
    let item = Item { id, category_id: fields.category_id, name: fields.name, price: fields.price };
    shop.store.update(&item).await?;
    Ok(Json(item))
}

async fn delete_item(State(shop): State<Shop>, PathParam(id): PathParam<i64>) -> ApiResult<StatusCode> {
    shop.store.delete::<Item>(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /items/{id}/move`.
#[derive(Debug, Deserialize)]
struct Move {
    category_id: i64,
}

/// Moves an item to another category. The update runs in a transaction, so the
/// cache hears of it (the id appended to the new category's node) only once the
/// database has committed; the old node drops the id lazily, on its next read.
async fn move_item(
    State(shop): State<Shop>,
    PathParam(id): PathParam<i64>,
    Body(to): Body<Move>,
) -> ApiResult<Json<Item>> {
    let mut item = find_item(&shop, id).await?;
    item.category_id = to.category_id;
    let mut tx = shop.store.begin().await?;
    // A row deleted since the read makes the update fail with NotFound (404).
    tx.update(&item).await?;
    tx.commit().await?;
    Ok(Json(item))
}

// ---------------------------------------------------------------------------
// Categories and carts

/// `limit` and `offset` of a paged listing.
#[derive(Debug, Deserialize)]
struct PageParams {
    limit: Option<u64>,
    offset: Option<u64>,
}

/// Rows per page when the request does not say.
const DEFAULT_PAGE: u64 = 20;
/// The largest page a request may ask for.
const MAX_PAGE: u64 = 500;

impl PageParams {
    /// The limit and offset, or why they cannot be served.
    fn checked(&self) -> ApiResult<(u64, u64)> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_PAGE}, not {limit}")));
        }
        Ok((limit, self.offset.unwrap_or(0)))
    }
}

async fn category_summary(
    State(shop): State<Shop>,
    PathParam(cat): PathParam<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    let (items, average_price) = match shop.reads {
        // Two views through the cache: on a hot cache each is a node and its objects.
        ReadPath::Cache => {
            let items: u64 = view!(Item, |c| c.category_id == cat, |c| count()).fetch_async(&shop.store).await?;
            let average: Option<f64> =
                view!(Item, |c| c.category_id == cat, |c| avg(c.price)).fetch_async(&shop.store).await?;
            (items, average)
        }
        // One statement; memdex has no filtered aggregate on the database, so the
        // rows come back and are summed here.
        ReadPath::Database => {
            let rows = scan!(Item, |c| c.category_id == cat).fetch_async(&shop.store).await?;
            let average = (!rows.is_empty()).then(|| rows.iter().map(|i| i.price).sum::<f64>() / rows.len() as f64);
            (rows.len() as u64, average)
        }
    };
    Ok(Json(json!({ "category_id": cat, "items": items, "average_price": average_price })))
}

async fn category_items(
    State(shop): State<Shop>,
    PathParam(cat): PathParam<i64>,
    QueryString(page): QueryString<PageParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let (limit, offset) = page.checked()?;
    // Ordered by id on both paths, so that a page means the same rows either way.
    let items = match shop.reads {
        ReadPath::Cache => {
            let q = select!(Item, |c| c.category_id == cat).order_by(Item::id()).limit(limit).offset(offset);
            q.fetch_async(&shop.store).await?
        }
        ReadPath::Database => {
            let q = scan!(Item, |c| c.category_id == cat).order_by(Item::id()).limit(limit).offset(offset);
            q.fetch_async(&shop.store).await?
        }
    };
    Ok(Json(json!({ "category_id": cat, "limit": limit, "offset": offset, "items": items })))
}

/// A page of a cart. On the cache path one index node (`cart_id=…`) serves every
/// page: paging never enters a cache key.
async fn cart_lines(
    State(shop): State<Shop>,
    PathParam(cart): PathParam<i64>,
    QueryString(page): QueryString<PageParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let (limit, offset) = page.checked()?;
    let lines = match shop.reads {
        ReadPath::Cache => {
            let q = select!(CartLine, |l| l.cart_id == cart).order_by(CartLine::position()).limit(limit).offset(offset);
            q.fetch_async(&shop.store).await?
        }
        ReadPath::Database => {
            let q = scan!(CartLine, |l| l.cart_id == cart).order_by(CartLine::position()).limit(limit).offset(offset);
            q.fetch_async(&shop.store).await?
        }
    };
    Ok(Json(json!({ "cart_id": cart, "limit": limit, "offset": offset, "lines": lines })))
}

// ---------------------------------------------------------------------------
// Text queries

/// The models a text query may name with `model=` (by table name).
#[derive(Clone, Copy, Debug)]
enum ModelName {
    Item,
    CartLine,
    Customer,
    Master,
}

impl ModelName {
    fn parse(name: &str) -> ApiResult<ModelName> {
        match name {
            "item" => Ok(ModelName::Item),
            "cart_line" => Ok(ModelName::CartLine),
            "customer" => Ok(ModelName::Customer),
            "master" => Ok(ModelName::Master),
            other => Err(ApiError::BadRequest(format!(
                "no model `{other}`; the models are item, cart_line, customer, master"
            ))),
        }
    }
}

/// A text query as the query string spells it: `q`, `model` (default `item`),
/// optional `limit` and `offset`, and every other name a free name of the query.
#[derive(Debug)]
struct TextRequest {
    text: String,
    model: ModelName,
    limit: Option<u64>,
    offset: u64,
    params: Vec<(String, Value)>,
}

impl TextRequest {
    fn parse(pairs: Vec<(String, String)>) -> ApiResult<TextRequest> {
        let (mut text, mut model, mut limit, mut offset, mut params) = (None, ModelName::Item, None, 0, Vec::new());
        for (name, raw) in pairs {
            match name.as_str() {
                "q" => text = Some(raw),
                "model" => model = ModelName::parse(&raw)?,
                "limit" => limit = Some(number(&name, &raw)?),
                "offset" => offset = number(&name, &raw)?,
                _ => params.push((name, param_value(&raw))),
            }
        }
        let text = text.filter(|t| !t.trim().is_empty());
        let text = text.ok_or_else(|| ApiError::BadQuery("missing q: write /query?q=lambda c: …".into()))?;
        Ok(TextRequest { text, model, limit, offset, params })
    }

    fn bound(&self) -> Vec<(&str, Value)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.clone())).collect()
    }
}

fn number(name: &str, raw: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| ApiError::BadRequest(format!("{name} must be a non-negative integer, not `{raw}`")))
}

/// A free name's value: JSON when it reads as JSON (`5`, `2.5`, `true`, `null`,
/// `"text"`, `[5, 6]`), else the raw text as a string (`lamp`).
fn param_value(raw: &str) -> Value {
    serde_json::from_str::<serde_json::Value>(raw).ok().and_then(|j| json_value(&j)).unwrap_or_else(|| raw.into())
}

fn json_value(json: &serde_json::Value) -> Option<Value> {
    Some(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(json_value).collect::<Option<Vec<_>>>()?),
        serde_json::Value::Object(_) => return None,
    })
}

/// Runs a text query on model `T` and returns its rows as JSON.
async fn text_rows<T: Model + Serialize>(store: &AsyncStore, request: &TextRequest) -> ApiResult<serde_json::Value> {
    let mut query = store.select_text::<T>(&request.text, &request.bound())?.offset(request.offset);
    if let Some(limit) = request.limit {
        query = query.limit(limit);
    }
    let rows = query.fetch_async(store).await?;
    serde_json::to_value(rows).map_err(|e| ApiError::Unavailable(format!("cannot encode the rows: {e}")))
}

async fn text_query(
    State(shop): State<Shop>,
    QueryString(pairs): QueryString<Vec<(String, String)>>,
) -> ApiResult<Json<serde_json::Value>> {
    let request = TextRequest::parse(pairs)?;
    if shop.reads == ReadPath::Database {
        return Err(ApiError::Unsupported(
            "this service reads with scan! only; text queries run through memdex's index path".into(),
        ));
    }
    let rows = match request.model {
        ModelName::Item => text_rows::<Item>(&shop.store, &request).await?,
        ModelName::CartLine => text_rows::<CartLine>(&shop.store, &request).await?,
        ModelName::Customer => text_rows::<Customer>(&shop.store, &request).await?,
        ModelName::Master => text_rows::<Master>(&shop.store, &request).await?,
    };
    let count = rows.as_array().map_or(0, Vec::len);
    Ok(Json(json!({ "query": request.text, "count": count, "rows": rows })))
}

/// The plan of a text query on model `T` (no I/O: planning only).
fn plan<T: Model>(store: &AsyncStore, request: &TextRequest) -> ApiResult<Explain> {
    Ok(store.select_text::<T>(&request.text, &request.bound())?.explain(store.dialect()))
}

async fn explain(
    State(shop): State<Shop>,
    QueryString(pairs): QueryString<Vec<(String, String)>>,
) -> ApiResult<Json<serde_json::Value>> {
    let request = TextRequest::parse(pairs)?;
    let explain = match request.model {
        ModelName::Item => plan::<Item>(&shop.store, &request)?,
        ModelName::CartLine => plan::<CartLine>(&shop.store, &request)?,
        ModelName::Customer => plan::<Customer>(&shop.store, &request)?,
        ModelName::Master => plan::<Master>(&shop.store, &request)?,
    };
    Ok(Json(explain_json(&explain, shop.store.dialect())))
}

fn explain_json(explain: &Explain, dialect: Dialect) -> serde_json::Value {
    let disjuncts: Vec<serde_json::Value> = explain
        .disjuncts
        .iter()
        .map(|d| json!({ "text": d.text, "access": d.access, "key": d.key_template, "residual": d.residual }))
        .collect();
    json!({
        "model": explain.model,
        "dialect": format!("{dialect:?}"),
        "hot_round_trips": explain.hot_round_trips,
        "scan": explain.scan,
        "disjuncts": disjuncts,
        "sql": explain.sql,
        "text": explain.to_string(),
    })
}

// ---------------------------------------------------------------------------
// Stats

async fn stats(State(shop): State<Shop>) -> Json<serde_json::Value> {
    Json(stats_json(&shop.store.stats()))
}

/// Every counter of [`Stats`] by name. The struct is taken apart without `..`, so a
/// counter added to memdex fails to compile here until it is listed.
pub fn stats_json(stats: &Stats) -> serde_json::Value {
    let Stats {
        node_hits,
        node_misses,
        object_hits,
        object_misses,
        near_hits,
        near_misses,
        near_unverified,
        near_node_hits,
        node_rechecks,
        node_sets_seen,
        fills_won,
        fills_lost,
        lease_busy,
        lazy_removals,
        db_queries,
        cache_round_trips,
        cache_errors,
        degraded_calls,
        writes,
        guards_shut,
        outbox_drained,
        outside_changes_applied,
        outbox_deferred,
        outbox_owed,
        cache_servers_down,
        cache_markdowns,
        cache_probes,
        cache_skipped_ops,
        cache_down_ms,
        near_bytes,
        near_entries,
        near_evictions,
        db_pool_connections,
        db_pool_idle,
        text_cache_hits,
        text_cache_misses,
    } = *stats;
    json!({
        "node_hits": node_hits, "node_misses": node_misses,
        "object_hits": object_hits, "object_misses": object_misses,
        "near_hits": near_hits, "near_misses": near_misses, "near_unverified": near_unverified,
        "near_node_hits": near_node_hits, "node_rechecks": node_rechecks, "node_sets_seen": node_sets_seen,
        "fills_won": fills_won, "fills_lost": fills_lost, "lease_busy": lease_busy,
        "lazy_removals": lazy_removals, "db_queries": db_queries,
        "cache_round_trips": cache_round_trips, "cache_errors": cache_errors,
        "degraded_calls": degraded_calls, "writes": writes, "guards_shut": guards_shut,
        "outbox_drained": outbox_drained, "outbox_deferred": outbox_deferred, "outbox_owed": outbox_owed,
        "outside_changes_applied": outside_changes_applied,
        "cache_servers_down": cache_servers_down, "cache_markdowns": cache_markdowns,
        "cache_probes": cache_probes, "cache_skipped_ops": cache_skipped_ops, "cache_down_ms": cache_down_ms,
        "near_bytes": near_bytes, "near_entries": near_entries, "near_evictions": near_evictions,
        "db_pool_connections": db_pool_connections, "db_pool_idle": db_pool_idle,
        "text_cache_hits": text_cache_hits, "text_cache_misses": text_cache_misses,
    })
}

// ---------------------------------------------------------------------------
// Set-up: the store, the tables, sample data, a running server

/// The store the service binary runs on: `MEMDEX_DATABASE_URL` (else
/// `DATABASE_URL`) and `MEMDEX_MEMCACHED` when set; otherwise a SQLite file of its
/// own in the temporary directory, and memcached on 127.0.0.1:11211 when something
/// listens there, else the in-process cache.
///
/// The cache namespace is `MEMDEX_NAMESPACE` (default `shop`) on a configured
/// database, which every process of the service shares; on the private SQLite file
/// it also names this process, so that a memcached shared with earlier runs never
/// serves rows of another run's database.
pub fn builder_from_env() -> StoreBuilder {
    let namespace = std::env::var("MEMDEX_NAMESPACE").unwrap_or_else(|_| "shop".into());
    let mut builder = memdex::Store::builder();
    match private_database() {
        None => builder = builder.namespace(namespace),
        Some(path) => {
            builder = builder.sqlite(path.to_string_lossy()).namespace(format!("{namespace}-{}", std::process::id()));
        }
    }
    with_local_memcached(builder).from_env()
}

/// `builder` with memcached on 127.0.0.1:11211 when something answers there and
/// `MEMDEX_MEMCACHED` is not set (when it is set, `StoreBuilder::from_env` takes it
/// as given, reachable or not).
pub fn with_local_memcached(builder: StoreBuilder) -> StoreBuilder {
    let memcached_configured = std::env::var_os("MEMDEX_MEMCACHED").is_some();
    match (!memcached_configured).then(memcached_address).flatten() {
        Some(addr) => builder.memcached([addr.to_string()]),
        None => builder,
    }
}

/// The SQLite file [`builder_from_env`] uses when no database is configured (the
/// caller may delete it, with its `-wal` and `-shm` companions, when done), or
/// `None` when the environment names a database.
pub fn private_database() -> Option<PathBuf> {
    let configured = ["MEMDEX_DATABASE_URL", "DATABASE_URL"].iter().any(|v| std::env::var_os(v).is_some());
    (!configured).then(|| std::env::temp_dir().join(format!("memdex-service-{}.db", std::process::id())))
}

/// Creates the shop's four tables (and their indexes) when they do not exist.
///
/// # Errors
///
/// The database's error when a table cannot be created.
pub async fn migrate(store: &AsyncStore) -> Result<(), memdex::Error> {
    store.migrate::<Item>().await?;
    store.migrate::<CartLine>().await?;
    store.migrate::<Customer>().await?;
    store.migrate::<Master>().await
}

/// How much sample data [`seed`] writes.
#[derive(Clone, Copy, Debug)]
pub struct Seed {
    /// Items with ids 1 to `items`; item `i` is in category `i % categories + 1`.
    pub items: i64,
    /// Categories 1 to `categories`.
    pub categories: i64,
    /// Carts 1 to `carts`.
    pub carts: i64,
    /// Lines per cart, at positions 0 to `lines_per_cart - 1`.
    pub lines_per_cart: i64,
}

impl Default for Seed {
    /// A shop big enough for the load generator to spread over: 10,000 items in
    /// 100 categories, 200 carts of 50 lines.
    fn default() -> Seed {
        Seed { items: 10_000, categories: 100, carts: 200, lines_per_cart: 50 }
    }
}

impl Seed {
    /// The category item `id` is seeded in.
    pub fn category_of(&self, id: i64) -> i64 {
        id % self.categories.max(1) + 1
    }

    /// Item `id` as seeded.
    pub fn item(&self, id: i64) -> Item {
        Item { id, category_id: self.category_of(id), name: format!("item {id}"), price: (id % 97) as f64 + 0.5 }
    }

    /// Line `position` of cart `cart` as seeded (its id is `cart * 100_000 + position`).
    pub fn cart_line(&self, cart: i64, position: i64) -> CartLine {
        let item_id = (cart * 31 + position * 7) % self.items.max(1) + 1;
        CartLine { id: cart * 100_000 + position, cart_id: cart, item_id, position }
    }
}

/// Rows written per transaction while seeding: small enough that no transaction
/// holds SQLite's write lock for long, large enough to commit rarely.
const SEED_BATCH: usize = 1_000;

/// Writes the sample data unless the item table already has rows (a database the
/// service used before keeps its data): items, carts, five customers and four
/// players. Returns whether it wrote anything.
///
/// # Errors
///
/// The database's error.
pub async fn seed(store: &AsyncStore, seed: &Seed) -> Result<bool, memdex::Error> {
    if scan!(Item, |c| c.id >= 0).count_async(store).await? > 0 {
        return Ok(false);
    }
    let items: Vec<Item> = (1..=seed.items).map(|id| seed.item(id)).collect();
    insert_all(store, &items).await?;
    let lines: Vec<CartLine> = (1..=seed.carts)
        .flat_map(|cart| (0..seed.lines_per_cart).map(move |p| (cart, p)))
        .map(|(c, p)| seed.cart_line(c, p))
        .collect();
    insert_all(store, &lines).await?;
    let customers =
        [(1, "mira", "Holm"), (2, "Mads", "Berg"), (3, "mikkel", "Dahl"), (4, "nora", "Lie"), (5, "max", "Ek")]
            .map(|(id, first, last)| Customer { id, first_name: first.into(), last_name: last.into() });
    insert_all(store, &customers).await?;
    let players =
        [(1, "SEA", "Ichiro", 127), (2, "SEA", "Edgar", 102), (3, "NYY", "Derek", 110), (4, "NYY", "Bernie", 98)]
            .map(|(id, team, name, runs)| Master { id, team: team.into(), name: name.into(), runs });
    insert_all(store, &players).await?;
    Ok(true)
}

async fn insert_all<T: Model>(store: &AsyncStore, rows: &[T]) -> Result<(), memdex::Error> {
    for batch in rows.chunks(SEED_BATCH) {
        let mut tx = store.begin().await?;
        for row in batch {
            tx.insert(row).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// A service running on a tokio task; it stops when this is dropped or
/// [`Running::stop`]ped.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server.
    ///
    /// # Errors
    ///
    /// The server's I/O error, or a task that did not finish normally.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            // The server may have stopped already; then there is no one to tell.
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `shop` on `listener` in a new task of the current tokio runtime (bind
/// `127.0.0.1:0` for a free port).
///
/// # Errors
///
/// The listener's error when its address cannot be read.
pub fn spawn(listener: TcpListener, shop: Shop) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, shop, async move {
        // A dropped sender stops the server as well as a sent stop.
        let _ = stopped.await;
    }));
    Ok(Running { addr, stop: Some(stop), task: Some(task) })
}

/// Serves `shop` on `listener` until `shutdown` completes, then lets the requests
/// in flight finish.
///
/// # Errors
///
/// The server's I/O error.
pub async fn serve(
    listener: TcpListener,
    shop: Shop,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shop)).with_graceful_shutdown(shutdown).await
}
