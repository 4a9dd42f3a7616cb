//! The shop as an HTTP service (axum on memdex's `AsyncStore`).
//!
//! `cargo run --example service`, then for instance:
//!
//! ```text
//! curl localhost:3000/items/42
//! curl 'localhost:3000/categories/7/items?limit=5&offset=10'
//! curl 'localhost:3000/carts/3?limit=10'
//! curl -G localhost:3000/query --data-urlencode 'q=lambda c: c.category_id == cat and c.price > 50' -d cat=7
//! curl -G localhost:3000/explain --data-urlencode 'q=lambda c: c.category_id in (1, 2)'
//! curl -X POST localhost:3000/items/42/move -H 'content-type: application/json' -d '{"category_id": 9}'
//! curl localhost:3000/stats
//! ```
//!
//! Where it runs (see `memdex_examples::service::builder_from_env`):
//!
//! * by default, SQLite in a file of its own under the temporary directory, with
//!   memcached when one listens on 127.0.0.1:11211, else the in-process cache;
//! * `MEMDEX_MEMCACHED=host:port,host:port` picks memcached servers;
//! * `MEMDEX_DATABASE_URL=postgres://user@host/db` (or `sqlite://path`) picks the
//!   database, shared by every process of the service (cache namespace
//!   `MEMDEX_NAMESPACE`, default `shop`);
//! * `MEMDEX_LISTEN=host:port` (default 127.0.0.1:3000) is where it listens.
//!
//! Sample data (10,000 items in 100 categories, 200 carts of 50 lines) is written
//! when the item table is empty. Ctrl-C (or SIGTERM) stops it.

use memdex_examples::service::{self, ReadPath, Seed, Shop};
use tokio::net::TcpListener;

/// Ctrl-C or SIGTERM: either stops the service cleanly, so that its private
/// database file is removed. A signal that cannot be watched is never awaited.
async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = service::builder_from_env().build_async().await?;
    service::migrate(&store).await?;
    if service::seed(&store, &Seed::default()).await? {
        println!("sample data written: {:?}", Seed::default());
    }
    let listen = std::env::var("MEMDEX_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("memdex shop service on http://{} ({})", listener.local_addr()?, store.describe());
    println!("try: curl http://{}/items/42", listener.local_addr()?);
    let shop = Shop::new(store, ReadPath::Cache);
    service::serve(listener, shop, stop_signal()).await?;
    println!("stopped");
    // The private database lived for this run only.
    if let Some(path) = service::private_database() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    Ok(())
}
