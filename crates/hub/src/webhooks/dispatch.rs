//! The webhook dispatcher: one task that reads due deliveries from the outbox and sends
//! each in a task of its own, at most `webhooks.concurrency` at once.
//!
//! - **Ordering:** the store only calls a delivery due when no earlier delivery of the
//!   same endpoint and conversation is still waiting, and a delivery in flight is still
//!   waiting in the table, so one conversation has at most one request in flight per
//!   endpoint and its events arrive in order.
//! - **Retries:** a failed attempt (no answer within `timeout_ms`, or a status other
//!   than 2xx) is tried again after an exponential delay with full jitter
//!   ([`retry_delay_ms`]), until `max_attempts`; then the delivery is `dead`.
//! - **Auto-disable:** an endpoint failing `disable_after_failures` times in a row over
//!   at least `disable_after_secs` is disabled, and the site's admins get an alert (which
//!   is an `alert.created` event for the site's other endpoints).
//! - **Restarts:** nothing is kept in memory but the set of rows in flight; a restart
//!   picks up every waiting row (a row in flight when the hub died is sent again: at
//!   least once, with the same event id).

use super::Webhooks;
use crate::clock::now_ms;
use crate::config::WebhooksConfig;
use crate::fanout::Bus;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use salam_protocol::ServerFrame;
use salam_store::Store;
use salam_store::{AttemptOutcome, DisablePolicy, DueDelivery, WebhookAttempt, WebhookEndpoint};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("Salam-Webhooks/", env!("CARGO_PKG_VERSION"));

/// The delay before retry number `attempt` (1 for the first retry): `base · 3^(n-1)`
/// capped at `max`, then a uniformly random part of it (full jitter).
pub fn retry_delay_ms(attempt: u32, base_ms: u64, max_ms: u64, random: f64) -> u64 {
    let exponent = attempt.saturating_sub(1).min(40);
    let ceiling = base_ms
        .saturating_mul(3u64.saturating_pow(exponent))
        .min(max_ms)
        .max(1);
    ((ceiling as f64) * random.clamp(0.0, 1.0)) as u64
}

/// What the dispatcher works with.
pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    /// Alerts for admins go out on it.
    pub bus: Arc<dyn Bus>,
    pub webhooks: Webhooks,
    pub config: WebhooksConfig,
    /// Flips to `true` when the hub shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Whether this hub delivers now (several hubs: the routing owner only).
    pub leadership: crate::peers::Leadership,
}

/// Starts the dispatcher (unless `webhooks.enabled` is false).
pub fn spawn(dispatcher: Dispatcher) {
    if !dispatcher.config.enabled {
        return;
    }
    tokio::spawn(run(Arc::new(dispatcher)));
}

fn client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

/// The deliveries being sent (a std mutex, held only to look up or change the sets).
#[derive(Default)]
struct InFlight {
    rows: HashSet<i64>,
    per_endpoint: HashMap<String, usize>,
}

impl InFlight {
    /// Marks a delivery in flight, unless it is already or its endpoint has `cap`.
    fn try_start(&mut self, id: i64, endpoint: &str, cap: usize) -> bool {
        let busy = self.per_endpoint.get(endpoint).copied().unwrap_or(0);
        if busy >= cap || !self.rows.insert(id) {
            return false;
        }
        self.per_endpoint.insert(endpoint.to_owned(), busy + 1);
        true
    }

    fn finish(&mut self, id: i64, endpoint: &str) {
        if !self.rows.remove(&id) {
            return;
        }
        if let Some(busy) = self.per_endpoint.get_mut(endpoint) {
            *busy -= 1;
            if *busy == 0 {
                self.per_endpoint.remove(endpoint);
            }
        }
    }
}

async fn run(state: Arc<Dispatcher>) {
    let config = state.config.clone();
    let client = client();
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1) as usize));
    let in_flight: Arc<Mutex<InFlight>> = Arc::default();
    // One slow endpoint may hold at most half the requests, so the others go on.
    let per_endpoint = (config.concurrency.max(1) as usize / 2).max(1);
    let webhooks = state.webhooks.clone();
    let mut shutdown = state.shutdown.clone();
    let poll = Duration::from_millis(config.poll_ms.max(10));
    let settle = config.settle_ms.min(60_000) as i64;
    tracing::info!("webhook dispatcher started");
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Once per cluster: on the routing owner (another hub's deliveries that never
        // finished are due again there).
        if !state.leadership.leads() {
            tokio::select! {
                _ = shutdown.changed() => {}
                () = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        let now = now_ms();
        let limit = config.concurrency.max(1) * 4;
        let due = match state.store.due_webhook_deliveries(now, settle, limit).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "webhook outbox not readable");
                Vec::new()
            }
        };
        let mut waiting = false;
        for delivery in due {
            let id = delivery.delivery.id;
            let endpoint = delivery.delivery.endpoint_id.clone();
            if !in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_start(id, &endpoint, per_endpoint)
            {
                waiting = true;
                continue;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .finish(id, &endpoint);
                waiting = true;
                break;
            };
            let (state, client, in_flight) = (state.clone(), client.clone(), in_flight.clone());
            tokio::spawn(async move {
                deliver(&state, &client, delivery).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .finish(id, &endpoint);
                drop(permit);
                state.webhooks.wake();
            });
        }
        // Sleep until the next row is due, a new event or a finished delivery wakes us,
        // or the poll interval passes.
        let pause = if waiting {
            poll
        } else {
            match state.store.next_webhook_due(settle).await {
                Ok(Some(at)) if at > now => Duration::from_millis((at - now) as u64).min(poll),
                Ok(Some(_)) => Duration::from_millis(10),
                _ => poll,
            }
        };
        tokio::select! {
            () = webhooks.woken() => {}
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One attempt at one delivery, recorded in the outbox.
async fn deliver(state: &Dispatcher, client: &HttpClient, due: DueDelivery) {
    let config = &state.config;
    let started = Instant::now();
    let at = now_ms();
    let result = send(
        client,
        &due,
        at,
        Duration::from_millis(config.timeout_ms.max(1)),
    )
    .await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let attempts = due.delivery.attempts + 1;
    let (status, error, outcome) = match result {
        Ok(code) if (200..300).contains(&code) => (Some(code), None, AttemptOutcome::Delivered),
        failed => {
            let (status, error) = match failed {
                Ok(code) => (Some(code), format!("HTTP {code}")),
                Err(error) => (None, error),
            };
            let outcome = if attempts >= config.max_attempts.max(1) {
                AttemptOutcome::Dead
            } else {
                let delay = retry_delay_ms(
                    attempts,
                    config.retry_base_ms,
                    config.retry_max_ms,
                    rand::thread_rng().r#gen::<f64>(),
                );
                AttemptOutcome::Retry(now_ms() + delay as i64)
            };
            (status, Some(error), outcome)
        }
    };
    tracing::debug!(
        delivery = due.delivery.id,
        event = %due.delivery.event_id,
        ?status,
        ?outcome,
        "webhook attempt"
    );
    let attempt = WebhookAttempt {
        delivery_id: due.delivery.id,
        endpoint_id: due.delivery.endpoint_id.clone(),
        at: now_ms(),
        status,
        error,
        duration_ms,
        outcome,
    };
    let policy = DisablePolicy {
        failures: config.disable_after_failures,
        over_ms: (config.disable_after_secs as i64).saturating_mul(1000),
    };
    match state.store.record_webhook_attempt(attempt, policy).await {
        Ok(Some(endpoint)) => disabled(state, &state.webhooks, &endpoint).await,
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "webhook attempt not recorded"),
    }
}

/// Sends one delivery: the HTTP status, or why there was none.
async fn send(
    client: &HttpClient,
    due: &DueDelivery,
    now: i64,
    timeout: Duration,
) -> Result<u16, String> {
    let timestamp = now / 1000;
    let previous = due
        .previous_secret
        .as_deref()
        .filter(|_| due.previous_expires_at.is_some_and(|until| until > now));
    let signature = super::sign::header(&due.secret, previous, timestamp, &due.delivery.body);
    let request = hyper::Request::post(&due.url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, USER_AGENT)
        .header("Salam-Webhook-Id", &due.delivery.event_id)
        .header("Salam-Webhook-Timestamp", timestamp.to_string())
        .header("Salam-Signature", signature)
        .body(Full::new(Bytes::from(due.delivery.body.clone())))
        .map_err(|err| format!("bad request: {err}"))?;
    let answer = tokio::time::timeout(timeout, async {
        let response = client
            .request(request)
            .await
            .map_err(|err| format!("request failed: {err}"))?;
        let status = response.status().as_u16();
        // Read (and drop) a bounded part of the body, so the connection can be reused.
        let mut body = response.into_body();
        let mut read = 0usize;
        while read < 64 * 1024 {
            match http_body_util::BodyExt::frame(&mut body).await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len()),
                _ => break,
            }
        }
        Ok(status)
    })
    .await;
    match answer {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// An endpoint was disabled for failing: an alert to the site's admins (and an
/// `alert.created` event for its other endpoints).
async fn disabled(state: &Dispatcher, webhooks: &Webhooks, endpoint: &WebhookEndpoint) {
    tracing::warn!(endpoint = %endpoint.id, url = %endpoint.url, "webhook endpoint disabled after repeated failures");
    if let Err(err) = webhooks.refresh().await {
        tracing::warn!(error = %err, "webhook sites not reloaded");
    }
    let now = now_ms();
    let alert = salam_store::Alert {
        id: 0,
        site_id: endpoint.site_id.clone(),
        conversation: None,
        kind: "webhook_disabled".into(),
        detail: format!(
            "webhook {} disabled after {} failed deliveries in a row",
            endpoint.url, endpoint.consecutive_failures
        ),
        at: now,
        acknowledged_at: None,
    };
    match state.store.create_alert(alert.clone()).await {
        Ok(Some(id)) => {
            crate::publish::to_admins(
                &*state.bus,
                &endpoint.site_id,
                &ServerFrame::Alert {
                    id,
                    kind: alert.kind.clone(),
                    conversation: None,
                    detail: alert.detail.clone(),
                    at: now,
                },
            );
            super::events::alert(webhooks, id, &alert).await;
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "webhook alert not stored"),
    }
}

#[cfg(test)]
mod tests {
    use super::{InFlight, retry_delay_ms};

    #[test]
    fn one_endpoint_holds_at_most_its_share_and_a_row_is_sent_once_at_a_time() {
        let mut in_flight = InFlight::default();
        assert!(in_flight.try_start(1, "a", 2));
        assert!(!in_flight.try_start(1, "a", 2), "the same row twice");
        assert!(in_flight.try_start(2, "a", 2));
        assert!(!in_flight.try_start(3, "a", 2), "past the endpoint's share");
        assert!(in_flight.try_start(3, "b", 2), "another endpoint goes on");
        in_flight.finish(1, "a");
        assert!(in_flight.try_start(4, "a", 2));
        in_flight.finish(9, "a");
        assert!(
            !in_flight.try_start(5, "a", 2),
            "finishing an unknown row frees nothing"
        );
    }

    #[test]
    fn the_delay_grows_by_three_and_stops_at_the_cap() {
        assert_eq!(retry_delay_ms(1, 10_000, 3_600_000, 1.0), 10_000);
        assert_eq!(retry_delay_ms(2, 10_000, 3_600_000, 1.0), 30_000);
        assert_eq!(retry_delay_ms(3, 10_000, 3_600_000, 1.0), 90_000);
        assert_eq!(retry_delay_ms(30, 10_000, 3_600_000, 1.0), 3_600_000);
        assert_eq!(retry_delay_ms(3, 10_000, 3_600_000, 0.5), 45_000);
        assert_eq!(retry_delay_ms(3, 10_000, 3_600_000, 0.0), 0);
    }
}
