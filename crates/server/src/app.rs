//! The route table: which path goes to which transport or endpoint.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use switchboard_proto::ErrorCode;

use crate::{api, assets, error::ApiError, limits, origin, state::AppState, transport};

/// Every route of the server.
pub(crate) fn router(state: AppState) -> Router {
    // Browser transports over plain HTTP: origin checks and CORS.
    let browser = Router::new()
        .route("/sse", get(transport::sse::stream))
        .route(
            "/poll",
            get(transport::poll::read).post(transport::poll::publish),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::per_ip,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), origin::cors));
    let mut router = Router::new()
        .route("/ws", get(transport::websocket::upgrade))
        .merge(browser)
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/client/{*path}", get(assets::client))
        .nest("/api", api::router(state.clone()));
    if state.config.websocket.echo_endpoint {
        router = router.route("/ws/echo", get(transport::websocket::echo));
    }
    if let Some(sio) = &state.socketio {
        // Socket.IO has its own CORS and origin handling (Engine.IO's error replies).
        let path = sio.config.path.trim_end_matches('/').to_owned();
        let entry = axum::routing::any(crate::socketio::engine::socketio).layer(
            middleware::from_fn_with_state(state.clone(), limits::per_ip),
        );
        router = router
            .route(&format!("{path}/"), entry.clone())
            .route(&path, entry);
        if sio.config.conformance {
            router = router
                .route(
                    "/engine.io/",
                    axum::routing::any(crate::socketio::engine::engineio),
                )
                .route(
                    "/engine.io",
                    axum::routing::any(crate::socketio::engine::engineio),
                );
        }
    }

    router
        .route("/", get(assets::index))
        .route("/{*path}", get(assets::web))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(&app.hub.stats()),
    )
        .into_response()
}

async fn health() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

async fn ready(State(app): State<AppState>) -> Response {
    if app.hub.is_shutting_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"shutting_down"}"#,
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ready"}"#,
        )
            .into_response()
    }
}
