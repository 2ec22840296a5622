//! What PostgreSQL costs against SQLite (issue 13): messages appended through the
//! [`Store`] trait on both backends, in one run.
//!
//! `cargo bench -p salam-store --bench backends -- --warm-up-time 1 --measurement-time 3`
//!
//! Before criterion starts it prints a table (criterion reports wall-clock means only,
//! and the machine is shared): for each backend, group-committed appends from 1, 16 and
//! 128 writers in flight on 8 conversations over a window of `SALAM_BENCH_SECONDS`
//! (default 3), with the CPU this process and the PostgreSQL server used over exactly
//! that window, and the p50/p99 of single appends made one at a time; then the ratios
//! PostgreSQL / SQLite. `-- zzz` prints the table only (the filter skips criterion).
//! Every append is made as the hub makes a client's: `append_queued`, then awaited
//! until its batch is committed.
//!
//! PostgreSQL is the server at `SALAM_TEST_POSTGRES_URL` (a scratch database, dropped
//! afterwards). Its CPU is `utime + stime` from `/proc/PID/stat` of this store's
//! backends (the writer's and the readers' connections) plus the server's shared
//! processes (WAL writer, checkpointer, background writer), which also serve any other
//! database on the server at the same time. SQLite's is this process's alone (its
//! writer and checkpointer are threads of it).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use salam_protocol::{Author, AuthorKind, ConversationState, MessageKind};
use salam_store::postgres::scratch::ScratchDatabase;
use salam_store::{
    NewMessage, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store, VisitorUpdate,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Writers in flight at once.
const IN_FLIGHT: [usize; 3] = [1, 16, 128];
/// Conversations the writers share (writer `i` appends to conversation `i % N`).
const CONVERSATIONS: usize = 8;
/// The text of every message: 74 characters, as the load generator sends.
const TEXT: &str = "Hello, I have a question about my order, it has not arrived yet. Thanks!!!";

/// One backend, its conversations, and what keeps its data alive.
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    conversations: Vec<String>,
    /// PostgreSQL's processes, to read their CPU time (`None` for SQLite).
    server: Option<ServerProcesses>,
    _dir: Option<tempfile::TempDir>,
    _database: Option<ScratchDatabase>,
}

/// Finds the PostgreSQL processes that work for one database.
struct ServerProcesses {
    client: std::sync::Mutex<pg::Client>,
}

impl ServerProcesses {
    /// The backends connected to this database (but this monitoring connection) and
    /// the server's shared writers.
    fn pids(&self) -> Vec<u32> {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        client
            .query(
                "SELECT pid FROM pg_stat_activity
                 WHERE (datname = current_database() AND pid <> pg_backend_pid())
                    OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
                &[],
            )
            .expect("pg_stat_activity")
            .iter()
            .map(|row| row.get::<_, i32>(0) as u32)
            .collect()
    }
}

/// CPU seconds so far of each process (those that could be read).
fn cpu_of(pids: &[u32]) -> HashMap<u32, f64> {
    pids.iter()
        .filter_map(|pid| Some((*pid, process_cpu(&format!("/proc/{pid}/stat"))?)))
        .collect()
}

/// `utime + stime` of `/proc/…/stat`, in seconds (fields counted from the last `)`).
fn process_cpu(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU used over a window: this process, and PostgreSQL's processes.
struct CpuWindow {
    own: f64,
    server: HashMap<u32, f64>,
}

impl CpuWindow {
    fn open(backend: &Backend) -> CpuWindow {
        CpuWindow {
            own: process_cpu("/proc/self/stat").unwrap_or(0.0),
            server: backend
                .server
                .as_ref()
                .map(|server| cpu_of(&server.pids()))
                .unwrap_or_default(),
        }
    }

    /// (this process, the server) CPU seconds since [`CpuWindow::open`]. A backend
    /// that connected during the window counts whole.
    fn close(self, backend: &Backend) -> (f64, f64) {
        let own = process_cpu("/proc/self/stat").unwrap_or(0.0) - self.own;
        let server = backend.server.as_ref().map_or(0.0, |server| {
            cpu_of(&server.pids())
                .iter()
                .map(|(pid, cpu)| cpu - self.server.get(pid).copied().unwrap_or(0.0))
                .sum()
        });
        (own, server)
    }
}

fn message(conversation: &str, client_id: String) -> NewMessage {
    NewMessage {
        conversation: conversation.to_owned(),
        kind: MessageKind::Text,
        author: Author {
            kind: AuthorKind::Visitor,
            id: Some("v_bench".into()),
            name: None,
        },
        text: TEXT.into(),
        client_id: Some(client_id),
        quick_replies: Vec::new(),
        rule: None,
        event: None,
        at: 1,
        only_in: None,
    }
}

/// Unique client ids across the whole run.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn next_message(conversations: &[String], writer: usize) -> NewMessage {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    message(
        &conversations[writer % conversations.len()],
        format!("b{id:x}"),
    )
}

async fn prepare(store: Arc<dyn Store>) -> Vec<String> {
    let site = store
        .create_site("Bench", &["*".into()])
        .await
        .expect("site");
    store
        .touch_visitor("v_bench", &site.id, VisitorUpdate::default(), 1)
        .await
        .expect("visitor");
    let mut conversations = Vec::new();
    for _ in 0..CONVERSATIONS {
        let conversation = store
            .create_conversation(&site.id, "v_bench", ConversationState::Queued, 1)
            .await
            .expect("conversation");
        conversations.push(conversation.id);
    }
    conversations
}

fn sqlite(runtime: &tokio::runtime::Runtime) -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("salam.db"), SqliteOptions::default())
            .expect("open SQLite"),
    );
    let conversations = runtime.block_on(prepare(store.clone()));
    Backend {
        name: "SQLite",
        store,
        conversations,
        server: None,
        _dir: Some(dir),
        _database: None,
    }
}

fn postgres(runtime: &tokio::runtime::Runtime) -> Backend {
    let database = ScratchDatabase::create().unwrap_or_else(|err| {
        panic!("PostgreSQL is needed for this benchmark (SALAM_TEST_POSTGRES_URL): {err}")
    });
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect(database.url(), PostgresOptions::default())
            .expect("connect to the scratch database"),
    );
    let client = database
        .url()
        .parse::<pg::Config>()
        .expect("scratch URL")
        .connect(pg::NoTls)
        .expect("monitoring connection");
    let conversations = runtime.block_on(prepare(store.clone()));
    Backend {
        name: "PostgreSQL",
        store,
        conversations,
        server: Some(ServerProcesses {
            client: std::sync::Mutex::new(client),
        }),
        _dir: None,
        _database: Some(database),
    }
}

/// One append as the hub makes a client's: queued, then awaited until committed.
async fn append(store: &dyn Store, message: NewMessage) {
    store
        .append_queued(message)
        .await
        .expect("queue an append")
        .await
        .expect("append");
}

/// `in_flight` writers each append one message at a time until `total` appends were
/// made (or, with `until`, until then); returns the appends made.
async fn closed_loop(
    backend: &Backend,
    in_flight: usize,
    total: u64,
    until: Option<Instant>,
) -> u64 {
    let remaining = Arc::new(AtomicU64::new(total));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..in_flight {
        let store = backend.store.clone();
        let conversations = backend.conversations.clone();
        let remaining = remaining.clone();
        let done = done.clone();
        tasks.spawn(async move {
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
                && until.is_none_or(|until| Instant::now() < until)
            {
                append(&*store, next_message(&conversations, writer)).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("writer task");
    }
    done.load(Ordering::Relaxed)
}

/// One closed-loop window: appends per second, and the CPU over it.
struct Measured {
    per_sec: f64,
    own_cpu: f64,
    server_cpu: f64,
    appends: u64,
    batches: Batches,
}

/// The writer's committed batches so far: how many, their jobs, and the time from a
/// batch's start to its commit's end (microseconds).
struct Batches {
    batches: u64,
    jobs: u64,
    micros: u64,
}

impl Batches {
    fn read(backend: &Backend) -> Batches {
        let metrics = backend.store.metrics();
        Batches {
            batches: metrics.batches.load(Ordering::Relaxed),
            jobs: metrics.jobs.load(Ordering::Relaxed),
            micros: metrics.commit_micros.load(Ordering::Relaxed),
        }
    }

    fn since(&self, before: &Batches) -> Batches {
        Batches {
            batches: self.batches - before.batches,
            jobs: self.jobs - before.jobs,
            micros: self.micros - before.micros,
        }
    }

    /// "mean jobs per batch / mean batch time in ms".
    fn describe(&self) -> String {
        let batches = self.batches.max(1) as f64;
        format!(
            "{:.1} / {:.2}",
            self.jobs as f64 / batches,
            self.micros as f64 / batches / 1e3
        )
    }
}

fn throughput(
    runtime: &tokio::runtime::Runtime,
    backend: &Backend,
    in_flight: usize,
    window: Duration,
) -> Measured {
    // Warm-up: the writers and any lazily opened connections are up before the window.
    let warm_up = Instant::now() + window / 4;
    runtime.block_on(closed_loop(backend, in_flight, u64::MAX, Some(warm_up)));
    let cpu = CpuWindow::open(backend);
    let batches = Batches::read(backend);
    let started = Instant::now();
    let appends = runtime.block_on(closed_loop(
        backend,
        in_flight,
        u64::MAX,
        Some(started + window),
    ));
    let elapsed = started.elapsed();
    let (own_cpu, server_cpu) = cpu.close(backend);
    let batches = Batches::read(backend).since(&batches);
    Measured {
        per_sec: appends as f64 / elapsed.as_secs_f64(),
        own_cpu,
        server_cpu,
        appends,
        batches,
    }
}

/// p50, p99 and max of single appends, one at a time, for `window` (at most 5,000).
fn latency(
    runtime: &tokio::runtime::Runtime,
    backend: &Backend,
    window: Duration,
) -> (Vec<Duration>, f64, f64) {
    let cpu = CpuWindow::open(backend);
    let deadline = Instant::now() + window;
    let mut samples = Vec::new();
    runtime.block_on(async {
        while samples.len() < 5_000 && Instant::now() < deadline {
            let started = Instant::now();
            append(
                &*backend.store,
                next_message(&backend.conversations, samples.len()),
            )
            .await;
            samples.push(started.elapsed());
        }
    });
    let (own, server) = cpu.close(backend);
    samples.sort();
    (samples, own, server)
}

fn quantile(samples: &[Duration], quantile: f64) -> f64 {
    let index = ((samples.len() as f64 * quantile) as usize).min(samples.len() - 1);
    samples[index].as_secs_f64() * 1e3
}

fn window() -> Duration {
    let seconds = std::env::var("SALAM_BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse::<f64>().ok())
        .filter(|seconds| *seconds > 0.0)
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

/// The table printed before criterion starts: both backends, interleaved, so that both
/// see the same neighbours.
fn summary(runtime: &tokio::runtime::Runtime, backends: &[Backend]) {
    let window = window();
    println!(
        "appends through the Store trait, {CONVERSATIONS} conversations, {:.1} s windows",
        window.as_secs_f64()
    );
    println!(
        "| Writers in flight | Backend | Appends/s | Bench process CPU (cores) | PostgreSQL server CPU (cores) | Appends per CPU-second (process + server) | Mean batch: appends / ms from start to commit |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut per_sec: HashMap<(usize, &str), (f64, f64)> = HashMap::new();
    for in_flight in IN_FLIGHT {
        for backend in backends {
            let result = throughput(runtime, backend, in_flight, window);
            let seconds = result.appends as f64 / result.per_sec;
            let per_cpu = result.appends as f64 / (result.own_cpu + result.server_cpu);
            println!(
                "| {in_flight} | {} | {:.0} | {:.2} | {} | {:.0} | {} |",
                backend.name,
                result.per_sec,
                result.own_cpu / seconds,
                if backend.server.is_some() {
                    format!("{:.2}", result.server_cpu / seconds)
                } else {
                    "—".into()
                },
                per_cpu,
                result.batches.describe()
            );
            per_sec.insert((in_flight, backend.name), (result.per_sec, per_cpu));
        }
    }
    println!();
    println!(
        "| Single append, one at a time | Backend | p50 (ms) | p99 (ms) | max (ms) | Appends | CPU per append (µs, process + server) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut p50s = HashMap::new();
    for backend in backends {
        let (samples, own, server) = latency(runtime, backend, window);
        println!(
            "| | {} | {:.3} | {:.3} | {:.3} | {} | {:.0} ({:.0} + {:.0}) |",
            backend.name,
            quantile(&samples, 0.50),
            quantile(&samples, 0.99),
            quantile(&samples, 1.0),
            samples.len(),
            (own + server) / samples.len() as f64 * 1e6,
            own / samples.len() as f64 * 1e6,
            server / samples.len() as f64 * 1e6,
        );
        p50s.insert(
            backend.name,
            (quantile(&samples, 0.50), quantile(&samples, 0.99)),
        );
    }
    println!();
    println!("| PostgreSQL / SQLite | Appends/s | Appends per CPU-second (process + server) |");
    println!("|---|---|---|");
    for in_flight in IN_FLIGHT {
        if let (Some(pg), Some(lite)) = (
            per_sec.get(&(in_flight, "PostgreSQL")),
            per_sec.get(&(in_flight, "SQLite")),
        ) {
            println!(
                "| {in_flight} in flight | {:.2} | {:.2} |",
                pg.0 / lite.0,
                pg.1 / lite.1
            );
        }
    }
    if let (Some(pg), Some(lite)) = (p50s.get("PostgreSQL"), p50s.get("SQLite")) {
        println!(
            "| single append latency p50 / p99 | {:.1} / {:.1} | |",
            pg.0 / lite.0,
            pg.1 / lite.1
        );
    }
    println!();
}

fn benches(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let backends = [sqlite(&runtime), postgres(&runtime)];
    summary(&runtime, &backends);

    let mut group = criterion.benchmark_group("append");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for in_flight in IN_FLIGHT {
        for backend in &backends {
            group.bench_with_input(
                BenchmarkId::new(backend.name, format!("{in_flight}_in_flight")),
                &in_flight,
                |bencher, &in_flight| {
                    bencher.iter_custom(|iters| {
                        let started = Instant::now();
                        runtime.block_on(closed_loop(backend, in_flight, iters, None));
                        started.elapsed()
                    })
                },
            );
        }
    }
    group.finish();
    // The stores close (and the scratch database is dropped) outside the runtime.
    drop(backends);
}

criterion_group!(backends, benches);
criterion_main!(backends);
