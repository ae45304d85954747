//! The HTTP side of loadgen: `/metrics` in the text format, `/healthz`, and the level API
//! tests use to change the workload (`GET`/`PUT /api/v1/level`). Handlers read the clock
//! once per request and hand the elapsed time to [`Levels`]; everything else is rendering.

use super::control::{Control, ControlReader};
use super::levels::{Levels, MAX_LEVEL};
use super::render::{self, SeriesChunks};
use crate::core::config::ProfileSpec;
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::net::TcpListener;
use tracing::info;

/// What `/metrics` exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Two gauges per pipeline, input and output: cheap for thousands of pipelines.
    Signals,
    /// `level` real series per pipeline, for Prometheus to scrape and relabel.
    Series,
}

/// Everything a loadgen serves, built and checked by the caller.
pub struct LoadgenConfig {
    /// Pipelines and where their levels come from.
    pub levels: Levels,
    /// What `/metrics` exports.
    pub mode: Mode,
    /// Profiles and their retention, least reducing first (the fallback).
    pub profiles: Vec<ProfileSpec>,
    /// The daemon's control file (signals mode); without it every pipeline is on the first
    /// profile.
    pub control_file: Option<PathBuf>,
}

/// The server failed after it started listening.
#[derive(Debug, thiserror::Error)]
#[error("loadgen stopped serving: {0}")]
pub struct ServeError(#[from] std::io::Error);

/// Shared by the handlers.
struct AppState {
    /// Levels are times since this instant.
    start: Instant,
    mode: Mode,
    /// Pipeline names escaped once for the exposition format.
    escaped: Arc<[String]>,
    /// Locked briefly per request: a snapshot of all levels, or one change.
    levels: Mutex<Levels>,
    /// Reads the control file per scrape; `None` without `--control-file`.
    control: Option<ControlReader>,
    /// What is in force without a control file: the first profile everywhere.
    no_control: Arc<Control>,
}

impl AppState {
    fn levels(&self) -> std::sync::MutexGuard<'_, Levels> {
        // A panic while holding the lock cannot leave levels half-changed (each change is
        // one assignment), so a poisoned lock is still safe to use.
        self.levels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The loadgen routes, with their state; the clock starts now.
pub fn router(config: LoadgenConfig) -> Router {
    let names: Arc<[String]> = config.levels.names().to_vec().into();
    let escaped = names
        .iter()
        .map(|n| render::escape_label_value(n))
        .collect();
    let first = config.profiles.first().map_or(1.0, |p| p.retention);
    let no_control = Arc::new(Control {
        generation: None,
        retentions: vec![first; names.len()],
    });
    let control = config
        .control_file
        .as_deref()
        .map(|path| ControlReader::new(path, names.clone(), config.profiles.clone()));
    let state = Arc::new(AppState {
        start: Instant::now(),
        mode: config.mode,
        escaped,
        levels: Mutex::new(config.levels),
        control,
        no_control,
    });
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/level", get(get_level).put(put_level))
        .with_state(state)
}

/// Serves `config` on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn serve(
    listener: TcpListener,
    config: LoadgenConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let levels = state.levels().all(state.start.elapsed());
    let body = match state.mode {
        Mode::Signals => {
            let control = match &state.control {
                Some(reader) => reader.read(),
                None => state.no_control.clone(),
            };
            Body::from(render::render_signals(
                &state.escaped,
                &levels,
                &control.retentions,
                control.generation,
            ))
        }
        Mode::Series => Body::from_stream(Chunks(SeriesChunks::new(state.escaped.clone(), levels))),
    };
    ([(header::CONTENT_TYPE, render::CONTENT_TYPE)], body).into_response()
}

/// Series-mode chunks as the stream a streaming body reads; each poll renders one chunk.
struct Chunks(SeriesChunks);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().0.next().map(Ok))
    }
}

/// `GET /api/v1/level` (and the answer to a `PUT`): every pipeline's current level.
#[derive(serde::Serialize)]
struct LevelsBody {
    levels: BTreeMap<String, u64>,
}

fn current_levels(state: &AppState) -> Json<LevelsBody> {
    let levels = state.levels();
    let now = levels.all(state.start.elapsed());
    Json(LevelsBody {
        levels: levels.names().iter().cloned().zip(now).collect(),
    })
}

async fn get_level(State(state): State<Arc<AppState>>) -> Json<LevelsBody> {
    current_levels(&state)
}

/// `PUT /api/v1/level`: `{"pipeline": "p0001", "level": 200000}`; `pipeline` null or
/// absent means every pipeline.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelChange {
    #[serde(default)]
    pipeline: Option<String>,
    level: u64,
}

/// A refused API call: the status and a one-line `{"error": "..."}`.
fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn put_level(
    State(state): State<Arc<AppState>>,
    body: Result<Json<LevelChange>, JsonRejection>,
) -> Response {
    let change = match body {
        Ok(Json(change)) => change,
        Err(rejection) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "{} (send JSON like {{\"pipeline\": \"p0001\", \"level\": 200000}}; pipeline null means all)",
                    rejection.body_text().replace('\n', " ")
                ),
            );
        }
    };
    if change.level > MAX_LEVEL {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "level {} is more than loadgen serves (at most {MAX_LEVEL})",
                change.level
            ),
        );
    }
    if let Err(e) = state.levels().set(change.pipeline.as_deref(), change.level) {
        return refuse(StatusCode::NOT_FOUND, e.to_string());
    }
    info!(
        pipeline = change.pipeline.as_deref().unwrap_or("(all)"),
        level = change.level,
        "Level set through the API."
    );
    current_levels(&state).into_response()
}
