//! The HTTP server (axum): `/metrics`, `/healthz`, `/readyz`, the JSON status API, the
//! decision log, and the override endpoints, which need `Authorization: Bearer <token>`
//! (compared in constant time). Handlers read the status board and forward commands to
//! the controller; they decide nothing. `/` is the read-only status page (`page`).

use super::controller::{CommandError, CommandRequest, ControllerMsg};
use super::status::SharedBoard;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use ractor::ActorRef;
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The board.
    pub board: SharedBoard,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Where commands go (replaced when the controller restarts).
    pub controller: Arc<RwLock<Option<ActorRef<ControllerMsg>>>>,
    /// The admin token; `None` disables the override endpoints.
    pub token: Option<Arc<str>>,
    /// How often the status page polls the API (see `page::poll_interval`).
    pub page_poll: Duration,
}

/// The router, with a request body limit of `max_body` bytes.
pub fn router(state: AppState, max_body: usize) -> Router {
    let router = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/override", post(set_override))
        .route("/api/v1/override/{pipeline}", delete(clear_override));
    // Only a `--features failpoints` build (the fault tests) can set fail points, the way
    // TiKV's status server does; a normal build has no such route.
    #[cfg(feature = "failpoints")]
    let router = router.route(
        "/debug/failpoints/{name}",
        axum::routing::put(set_failpoint),
    );
    router
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// `PUT /debug/failpoints/{name}` with the action as the body (`panic`, `1*panic`,
/// `off`, ...: the `fail` crate's syntax).
#[cfg(feature = "failpoints")]
async fn set_failpoint(Path(name): Path<String>, body: String) -> Response {
    match fail::cfg(name.clone(), body.trim()) {
        Ok(()) => {
            tracing::warn!(failpoint = %name, action = %body.trim(), "Fail point set.");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e, Some("body")),
    }
}

fn error(code: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let mut text = s.metrics.render();
        super::series::table().render(&mut text);
        text
    })
        .into_response()
}

async fn page(State(s): State<AppState>) -> Response {
    let html = {
        let b = s.board.read().expect("board lock");
        super::page::render(&b, s.page_poll)
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page is generated on every request: a cached copy would show an old state.
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    let b = s.board.read().expect("board lock");
    if b.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let waiting: Vec<&String> = b
            .actuators_ready
            .iter()
            .filter(|(_, r)| !**r)
            .map(|(c, _)| c)
            .collect();
        let why = if !b.sampled {
            "no sample yet".to_string()
        } else {
            format!("actuators not ready: {waiting:?}")
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response()
    }
}

async fn status(State(s): State<AppState>) -> Response {
    let b = s.board.read().expect("board lock");
    axum::Json(json!({
        "policy": { "name": b.policy.0, "sha256": b.policy.1 },
        "ready": b.ready(),
        "safe_hold": b.safe_hold,
        "safe_hold_reason": b.safe_hold_reason,
        "sources": b.sources,
        "pipelines": b.pipelines.values().collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct DecisionsQuery {
    pipeline: Option<String>,
    limit: Option<usize>,
    /// At most this many entries of each pipeline (what the status page polls).
    per_pipeline: Option<usize>,
}

async fn decisions(State(s): State<AppState>, Query(q): Query<DecisionsQuery>) -> Response {
    let b = s.board.read().expect("board lock");
    let cap = super::status::DECISION_LOG_CAP;
    let entries = match (q.per_pipeline, q.pipeline.as_deref()) {
        // Per pipeline, the total is bounded by the log itself unless `limit` says less.
        (Some(per), None) => {
            let mut e = b.recent_per_pipeline(per);
            e.truncate(q.limit.unwrap_or(cap).min(cap));
            e
        }
        (per, pipeline) => {
            let limit = q.limit.unwrap_or(100).min(cap);
            b.decisions(pipeline, per.map_or(limit, |p| p.min(limit)))
        }
    };
    axum::Json(entries).into_response()
}

/// Checks the bearer token; the error response when it is wrong or missing.
fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = &s.token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "the override API is disabled: set http.admin_token or http.admin_token_file",
            None,
        )));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if bool::from(g.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        Some(_) => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "wrong token",
            None,
        ))),
        None => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>`",
            None,
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    pipeline: String,
    profile: String,
    ttl: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

async fn command(s: &AppState, pipeline: String, cmd: CommandRequest) -> Response {
    let Some(controller) = s.controller.read().expect("lock").clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller is restarting",
            None,
        );
    };
    let res = ractor::call_t!(
        controller,
        |reply| ControllerMsg::Command {
            pipeline,
            command: cmd,
            reply
        },
        5_000
    );
    match res {
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the controller did not answer: {e}"),
            None,
        ),
        Ok(Err(e @ CommandError::UnknownPipeline(_))) => {
            error(StatusCode::NOT_FOUND, e.to_string(), Some("pipeline"))
        }
        Ok(Err(e @ CommandError::UnknownProfile { .. })) => {
            error(StatusCode::NOT_FOUND, e.to_string(), Some("profile"))
        }
        Ok(Err(e @ CommandError::SafeHold)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None)
        }
        Ok(Ok(sentence)) => axum::Json(json!({ "ok": true, "event": sentence })).into_response(),
    }
}

async fn set_override(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return *r;
    }
    let b: OverrideBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            let msg = e.to_string();
            let field = ["pipeline", "profile", "ttl", "reason", "by"]
                .into_iter()
                .find(|f| msg.contains(&format!("`{f}`")));
            return error(
                StatusCode::BAD_REQUEST,
                format!("body must be {{pipeline, profile, ttl, reason}}: {msg}"),
                field,
            );
        }
    };
    let ttl: Duration = match humantime::parse_duration(b.ttl.trim()) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "ttl `{}` must be a duration above zero with a unit, e.g. 30m",
                    b.ttl
                ),
                Some("ttl"),
            );
        }
    };
    let cmd = CommandRequest::Override {
        profile: b.profile,
        ttl,
        by: b.by.unwrap_or_else(|| "api".to_string()),
        reason: b.reason.unwrap_or_default(),
    };
    command(&s, b.pipeline, cmd).await
}

async fn clear_override(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(pipeline): Path<String>,
) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return *r;
    }
    command(
        &s,
        pipeline,
        CommandRequest::Clear {
            by: "api".to_string(),
        },
    )
    .await
}
