//! `goatview serve`: the HTTP API over the store, until Ctrl-C or SIGTERM.

use std::sync::Arc;

use anyhow::Context;

use crate::api::{AppState, Clock};
use crate::cli::{HttpArgs, ServeArgs};
use crate::events::Instant;
use crate::ingest::kafka::{KafkaStats, run_consumer};
use crate::store::Store;

/// redb's page cache for `serve`, in MiB: half redb's default, because a Kafka consumer
/// catching up holds a window of events as a replay does. Queries were as fast with it as
/// with 1 GiB at scale L (BENCHMARKS.md, nineteenth session).
pub const SERVE_CACHE_MIB: u64 = 512;

/// Serves HTTP and, when brokers are configured, consumes Kafka into the same store. One
/// stop signal ends both: Ctrl-C/SIGTERM, or the consumer failing for good (a store
/// commit error), so a server never goes on answering from state that stopped moving.
pub async fn run(args: ServeArgs, now: Option<Instant>) -> anyhow::Result<()> {
    let store = Arc::new(args.db.open_with_default_cache(Some(SERVE_CACHE_MIB))?);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        }
    });
    let consuming = args.kafka.brokers.as_deref().is_some_and(|b| !b.trim().is_empty());
    let stats = consuming.then(|| Arc::new(KafkaStats::default()));
    let consumer = stats.clone().map(|stats| {
        let consume = run_consumer(store.clone(), args.kafka, stats, move || super::now(now), stopped());
        let stop = stop.clone();
        tokio::spawn(async move {
            let result = consume.await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "Kafka consumer failed; shutting down.");
                let _ = stop.send(true);
            }
            result
        })
    });
    let served = serve_http(store, &args.http, now, stats, stopped()).await;
    let _ = stop.send(true);
    if let Some(consumer) = consumer {
        consumer.await.context("Kafka consumer task")??;
    }
    served
}

/// Serves the API on `http.listen` until `shutdown` completes.
pub async fn serve_http(
    store: Arc<Store>,
    http: &HttpArgs,
    now: Option<Instant>,
    kafka: Option<Arc<KafkaStats>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState {
        store,
        clock: now.map_or(Clock::System, Clock::Fixed),
        session_secret: http.session_secret.as_ref().map(|s| Arc::from(s.as_bytes())),
        kafka,
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
