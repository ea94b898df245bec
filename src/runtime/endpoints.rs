//! The operator's HTTP endpoints (client required for `/metrics` authorization): `/healthz`
//! (the process runs), `/readyz` (watches synced, CloudFront reachable: [`super::readiness`])
//! and `/metrics` (OpenMetrics text, for callers [`MetricsAuthorizer`] lets in).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use axum::response::IntoResponse as _;

use super::metrics_auth::MetricsAuthorizer;
use super::readiness::Readiness;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves until `shutdown`; `scrape` renders the metrics.
pub(super) async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    authorizer: MetricsAuthorizer,
    scrape: impl Fn() -> String + Clone + Send + Sync + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for health checks: {e}"))?;
    let authorizer = Arc::new(authorizer);
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move |headers: HeaderMap| {
                let (authorizer, scrape) = (authorizer.clone(), scrape.clone());
                async move {
                    match authorizer.authorize(&headers).await {
                        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], scrape()).into_response(),
                        Err(refusal) => refusal.into_response(),
                    }
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = readiness.clone();
                async move { ready.answer() }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok(())
}
