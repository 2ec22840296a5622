//! A real HTTP receiver for webhooks (axum on 127.0.0.1, in the test process): it
//! verifies every request's signature with the documented algorithm (HMAC-SHA256 of
//! "{timestamp}.{body}" with the endpoint's secret, a `v1=` per secret, a five-minute
//! replay window), records what came, and fails on purpose when told to: a 500 for the
//! next N requests, for every request, or no answer at all (it stalls).

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Signatures older (or newer) than this are refused, as the docs tell receivers.
const REPLAY_WINDOW_SECS: i64 = 300;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    /// `Salam-Webhook-Id`.
    pub id: String,
    pub raw: Vec<u8>,
    pub body: Value,
    pub user_agent: String,
    /// The secrets (by index into [`Receiver::set_secrets`]) whose signature verified.
    pub verified: Vec<usize>,
    /// What the receiver answered (0: it stalled and never answered).
    pub answered: u16,
}

impl Request {
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct Inner {
    secrets: Vec<String>,
    requests: Vec<Request>,
    fail_next: u32,
    fail_always: bool,
    stall: bool,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Result<Receiver> {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, inner })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The secrets a signature may be made with.
    pub fn set_secrets(&self, secrets: &[&str]) {
        self.with(|inner| inner.secrets = secrets.iter().map(|s| (*s).to_owned()).collect());
    }

    /// Answer 500 to the next `n` requests.
    pub fn fail_next(&self, n: u32) {
        self.with(|inner| inner.fail_next = n);
    }

    pub fn fail_always(&self, on: bool) {
        self.with(|inner| inner.fail_always = on);
    }

    /// Never answer (until turned off).
    pub fn stall(&self, on: bool) {
        self.with(|inner| inner.stall = on);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.with(|inner| inner.requests.clone())
    }

    /// The requests answered 2xx.
    pub fn delivered(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|request| (200..300).contains(&request.answered))
            .collect()
    }
}

/// The documented verification: every `v1=` of `Salam-Signature` against every
/// secret; the indices of the secrets that verified. Refuses a timestamp outside the
/// replay window.
pub fn verify(secrets: &[String], headers: &HeaderMap, body: &[u8]) -> Vec<usize> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let Ok(timestamp) = header("salam-webhook-timestamp").parse::<i64>() else {
        return Vec::new();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    if (now - timestamp).abs() > REPLAY_WINDOW_SECS {
        return Vec::new();
    }
    let given: Vec<String> = header("salam-signature")
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1=").map(str::to_owned))
        .collect();
    let mut verified = Vec::new();
    for (index, secret) in secrets.iter().enumerate() {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        // (A real receiver compares in constant time; this one only tests.)
        if given.contains(&expected) {
            verified.push(index);
        }
    }
    verified
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (stall, status) = {
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        let verified = verify(&inner.secrets, &headers, &body);
        let status = if inner.stall {
            0
        } else if inner.fail_always {
            500
        } else if inner.fail_next > 0 {
            inner.fail_next -= 1;
            500
        } else if verified.is_empty() {
            401
        } else {
            200
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        inner.requests.push(Request {
            id: header("salam-webhook-id"),
            raw: body.to_vec(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            user_agent: header("user-agent"),
            verified,
            answered: status,
        });
        (inner.stall, status)
    };
    if stall {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
