//! The local stack: every function's router behind one HTTP server, over one SQLite file. It
//! needs no network, no AWS account and no other service. `main.rs` reads the configuration and
//! runs [`App`]; the black-box tests build the same [`App`] in-process.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use rand::RngCore;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use triggerline::ports::{InvocationStore, SubscriptionStore};
use triggerline::time::{RandomIds, SystemClock};
use triggerline_embedded::{Sqlite, SqliteInvocationStore, SqliteSubscriptionStore};
use triggerline_http::ApiAuth;

/// Environment variables, named once.
pub mod env {
    pub const LISTEN: &str = "TRIGGERLINE_LISTEN";
    pub const DATA_DIR: &str = "TRIGGERLINE_DATA_DIR";
    pub const PUBLIC_URL: &str = "TRIGGERLINE_PUBLIC_URL";
    pub const API_TOKEN: &str = "TRIGGERLINE_API_TOKEN";
    pub const LOG_FORMAT: &str = "TRIGGERLINE_LOG_FORMAT";
}

/// The local stack's configuration, read once at the edge (`main.rs`: flags, then environment).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "triggerline",
    version,
    about = "Triggerline: event triggers, locally."
)]
pub struct Config {
    /// Address to serve the API on.
    #[arg(long, env = env::LISTEN, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder for the SQLite database (created if missing).
    #[arg(long, env = env::DATA_DIR, default_value = "./.triggerline")]
    pub data_dir: PathBuf,
    /// Base URL subscribers use to reach this service (callback URLs); defaults to the listen
    /// address.
    #[arg(long, env = env::PUBLIC_URL)]
    pub public_url: Option<String>,
    /// Bearer token the management API accepts; generated and printed at start when unset.
    #[arg(long, env = env::API_TOKEN, hide_env_values = true)]
    pub api_token: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = env::LOG_FORMAT, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A built local stack: its router and the stores behind it.
#[derive(Debug, Clone)]
pub struct App {
    pub router: Router,
    pub subscriptions: Arc<dyn SubscriptionStore>,
    pub invocations: Arc<dyn InvocationStore>,
    /// The token the management API accepts.
    pub api_token: Arc<str>,
    /// Whether `api_token` was generated because none was configured.
    pub token_generated: bool,
}

impl App {
    /// Opens the database under `config.data_dir` and assembles every function's router.
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        let db_path = config.data_dir.join("triggerline.db");
        let db = Sqlite::open(&db_path)
            .await
            .with_context(|| format!("cannot open {}", db_path.display()))?;
        let subscriptions: Arc<dyn SubscriptionStore> =
            Arc::new(SqliteSubscriptionStore::new(db.clone()));
        let invocations: Arc<dyn InvocationStore> = Arc::new(SqliteInvocationStore::new(db));

        let (api_token, token_generated) = match &config.api_token {
            Some(token) if !token.is_empty() => (Arc::<str>::from(token.as_str()), false),
            _ => (Arc::<str>::from(generate_token()), true),
        };
        let auth = ApiAuth::Token(api_token.clone());

        let router = Router::new()
            .route(
                "/health",
                get(|| async { Json(serde_json::json!({"status": "ok"})) }),
            )
            .merge(subscription_api::router(subscription_api::Context {
                subscriptions: subscriptions.clone(),
                clock: Arc::new(SystemClock),
                ids: Arc::new(RandomIds),
                auth: auth.clone(),
            }))
            .merge(status_query::router(status_query::Context {
                invocations: invocations.clone(),
                auth,
            }))
            .fallback(triggerline_http::not_found)
            .layer(TraceLayer::new_for_http());

        Ok(App {
            router,
            subscriptions,
            invocations,
            api_token,
            token_generated,
        })
    }

    /// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

fn generate_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "tl_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}
