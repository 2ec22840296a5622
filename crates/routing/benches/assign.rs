//! Assignment decision latency at hub scale: 1,000 agents across 10 departments and
//! 10,000 chats, first on one site, then with the agents shared across 10 sites. Only
//! the routing call is timed (`iter_custom`); the bookkeeping that keeps the router in a
//! steady state between iterations is not.
//!
//! Run: `cargo bench -p salam-routing -- --warm-up-time 1 --measurement-time 3`

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use salam_routing::{AgentSpec, Effect, Router, RouterConfig, SitePolicy, Sites};

const N_AGENTS: usize = 1_000;
const N_DEPARTMENTS: usize = 10;
const N_SITES: usize = 10;
const N_CHATS: usize = 10_000;
const SITE: &str = "site-0";

fn department(index: usize) -> String {
    format!("dept-{}", index % N_DEPARTMENTS)
}

fn site(index: usize) -> String {
    format!("site-{}", index % N_SITES)
}

fn router(capacity: u32) -> Router {
    Router::new(RouterConfig {
        default_capacity: capacity,
        default_policy: SitePolicy {
            accept_timeout_ms: None,
            first_response_target_ms: Some(60_000),
        },
        ..RouterConfig::default()
    })
}

/// Registers the agent and opens a socket, which brings them Online.
fn connect(router: &mut Router, spec: AgentSpec) {
    let id = spec.id.clone();
    router.upsert_agent(spec, 0);
    router.agent_connected(&id, 1, 0).expect("just registered");
}

/// 1,000 Online agents of every site; agent i serves department i % 10, and every
/// fifth agent also serves the next department.
fn one_site(capacity: u32) -> Router {
    let mut router = router(capacity);
    for agent_index in 0..N_AGENTS {
        let mut departments = vec![department(agent_index)];
        if agent_index % 5 == 0 {
            departments.push(department(agent_index + 1));
        }
        connect(
            &mut router,
            AgentSpec {
                id: format!("agent-{agent_index}"),
                sites: Sites::All,
                departments,
                capacity: None,
            },
        );
    }
    router
}

/// 1,000 Online agents shared across 10 sites (100 queues): even agents work on every
/// site, odd agents on one site each (agents 20k..20k+19 on site k). Agent i serves
/// department (i / 2) % 10, and every fifth agent also the next one, on each of their
/// sites. An agent of every site sits in up to 30 queues.
fn ten_sites(capacity: u32) -> Router {
    let mut router = router(capacity);
    for agent_index in 0..N_AGENTS {
        let mut departments = vec![department(agent_index / 2)];
        if agent_index % 5 == 0 {
            departments.push(department(agent_index / 2 + 1));
        }
        let sites = if agent_index % 2 == 0 {
            Sites::All
        } else {
            Sites::Only(vec![site(agent_index / 20)])
        };
        connect(
            &mut router,
            AgentSpec {
                id: format!("agent-{agent_index}"),
                sites,
                departments,
                capacity: None,
            },
        );
    }
    router
}

/// `(site, department)` of the i-th chat.
type Arrival = fn(usize) -> (String, String);

/// The chats the effects assign, in order.
fn assigned(effects: &[Effect]) -> impl Iterator<Item = String> + '_ {
    effects.iter().filter_map(|effect| match effect {
        Effect::Assigned { conversation, .. } => Some(conversation.clone()),
        _ => None,
    })
}

/// Every seat taken (capacity 5 → 5,000 held) and 10,000 chats queued behind them.
/// Timed: one close of the chat held longest, whose freed seat drains one queued chat.
fn free_seat_drains_one_queued(
    criterion: &mut Criterion,
    name: &str,
    mut router: Router,
    arrival: Arrival,
) {
    let mut now = 1;
    let mut next_chat = 0usize;
    let mut held = VecDeque::new();
    let mut arrive = |router: &mut Router, held: &mut VecDeque<String>, now: u64| {
        let (site, department) = arrival(next_chat);
        let effects = router
            .enqueue(&format!("c{next_chat}"), &site, &department, 0, now)
            .expect("new");
        held.extend(assigned(&effects));
        next_chat += 1;
    };
    for _ in 0..N_AGENTS * 5 + N_CHATS {
        arrive(&mut router, &mut held, now);
        now += 1;
    }
    assert_eq!(router.queue_snapshot(None).len(), N_CHATS);
    assert_eq!(held.len(), N_AGENTS * 5, "every seat taken");
    criterion.bench_function(name, |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let closing = held.pop_front().expect("every seat is taken");
                now += 1;
                let started = Instant::now();
                let effects = router.close(&closing, now).expect("held");
                total += started.elapsed();
                held.extend(assigned(black_box(&effects)));
                router.forget_closed(&closing).expect("closed");
                arrive(&mut router, &mut held, now);
            }
            total
        });
    });
}

fn free_seat_drains_one_of_10k_queued(criterion: &mut Criterion) {
    free_seat_drains_one_queued(
        criterion,
        "free seat drains one of 10k queued",
        one_site(5),
        |chat| (SITE.to_owned(), department(chat)),
    );
}

/// The same with the agents shared across 10 sites and the 10,000 waiting chats spread
/// over their 100 queues (chat i on site i % 10, department (i / 10) % 10).
fn free_seat_drains_one_of_10k_queued_across_10_sites(criterion: &mut Criterion) {
    free_seat_drains_one_queued(
        criterion,
        "free seat drains one of 10k queued, agents shared across 10 sites",
        ten_sites(5),
        |chat| (site(chat), department(chat / N_SITES)),
    );
}

/// 10,000 chats held (capacity 20, load 10 each): seats are free. Timed: one new chat,
/// assigned at once.
fn new_chat_assigned_while_agents_are_free(criterion: &mut Criterion) {
    let mut router = one_site(20);
    let mut now = 1;
    for chat_index in 0..N_CHATS {
        router
            .enqueue(
                &format!("held-{chat_index}"),
                SITE,
                &department(chat_index),
                0,
                now,
            )
            .expect("new");
        now += 1;
    }
    let mut next_chat = 0usize;
    criterion.bench_function("new chat assigned, 10k held, agents free", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let arriving = format!("c{next_chat}");
                let department = department(next_chat);
                next_chat += 1;
                now += 1;
                let started = Instant::now();
                let effects = router
                    .enqueue(&arriving, SITE, &department, 0, now)
                    .expect("new");
                total += started.elapsed();
                black_box(effects);
                router.close(&arriving, now).expect("assigned");
                router.forget_closed(&arriving).expect("closed");
            }
            total
        });
    });
}

/// Every seat taken and 10,000 queued. Timed: one new chat joining the queue.
fn new_chat_queued_behind_10k(criterion: &mut Criterion) {
    let mut router = one_site(5);
    let mut now = 1;
    for chat_index in 0..N_AGENTS * 5 + N_CHATS {
        router
            .enqueue(
                &format!("c{chat_index}"),
                SITE,
                &department(chat_index),
                0,
                now,
            )
            .expect("new");
        now += 1;
    }
    assert_eq!(router.queue_snapshot(None).len(), N_CHATS);
    let mut next_chat = 0usize;
    criterion.bench_function("new chat queued behind 10k", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let arriving = format!("new-{next_chat}");
                let department = department(next_chat);
                next_chat += 1;
                now += 1;
                let started = Instant::now();
                let effects = router
                    .enqueue(&arriving, SITE, &department, 0, now)
                    .expect("new");
                total += started.elapsed();
                black_box(effects);
                router.close(&arriving, now).expect("queued");
                router.forget_closed(&arriving).expect("closed");
            }
            total
        });
    });
}

criterion_group!(
    benches,
    free_seat_drains_one_of_10k_queued,
    free_seat_drains_one_of_10k_queued_across_10_sites,
    new_chat_assigned_while_agents_are_free,
    new_chat_queued_behind_10k
);
criterion_main!(benches);
