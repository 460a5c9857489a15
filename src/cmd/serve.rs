//! `goatview serve`: the HTTP API over the store, until Ctrl-C or SIGTERM.

use std::sync::Arc;

use anyhow::Context;

use crate::api::{AppState, Clock};
use crate::cli::{HttpArgs, ServeArgs};
use crate::events::Instant;
use crate::ingest::kafka::{KafkaStats, run_consumer};
use crate::store::Store;

/// Serves HTTP and, when brokers are configured, consumes Kafka into the same store. One
/// signal stops both; the consumer finishes or abandons its batch atomically.
pub async fn run(args: ServeArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let store = Arc::new(Store::open(&args.db.db).with_context(|| format!("opening {}", args.db.db.display()))?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let http = serve_http(store.clone(), &args.http, now, stopped());
    if args.kafka.brokers.as_deref().is_none_or(|b| b.trim().is_empty()) {
        return http.await;
    }
    let stats = Arc::new(KafkaStats::default());
    let consumer = run_consumer(store, args.kafka, stats, move || super::now(now), stopped());
    let (h, k) = tokio::join!(http, consumer);
    h?;
    k?;
    Ok(())
}

/// Serves the API on `http.listen` until `shutdown` completes.
pub async fn serve_http(
    store: Arc<Store>,
    http: &HttpArgs,
    now: Option<Instant>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState {
        store,
        clock: now.map_or(Clock::System, Clock::Fixed),
        session_secret: http.session_secret.as_ref().map(|s| Arc::from(s.as_bytes())),
    };
    let listener =
        tokio::net::TcpListener::bind(http.listen).await.with_context(|| format!("binding {}", http.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "Serving the API.");
    axum::serve(listener, crate::api::router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("Shutting down.");
}
