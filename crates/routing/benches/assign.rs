//! Assignment decision latency at site scale: 1,000 agents across 10 departments and
//! 10,000 chats. Only the routing call is timed (`iter_custom`); the bookkeeping that
//! keeps the site in a steady state between iterations is not.
//!
//! Run: `cargo bench -p salam-routing -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use salam_routing::{AgentSpec, Presence, Router, RouterConfig};

const N_AGENTS: usize = 1_000;
const N_DEPARTMENTS: usize = 10;
const N_CHATS: usize = 10_000;

fn department(index: usize) -> String {
    format!("dept-{}", index % N_DEPARTMENTS)
}

/// 1,000 Online agents; agent i serves department i % 10, and every fifth agent also
/// serves the next department.
fn site(capacity: u32) -> Router {
    let mut router = Router::new(RouterConfig {
        default_capacity: capacity,
        first_response_target_ms: Some(60_000),
        ..RouterConfig::default()
    });
    for agent_index in 0..N_AGENTS {
        let mut departments = vec![department(agent_index)];
        if agent_index % 5 == 0 {
            departments.push(department(agent_index + 1));
        }
        let id = format!("agent-{agent_index}");
        router.upsert_agent(
            AgentSpec {
                id: id.clone(),
                departments,
                capacity: None,
            },
            0,
        );
        router
            .set_presence(&id, Presence::Online, 0)
            .expect("just registered");
    }
    router
}

/// Every seat taken (capacity 5 → 5,000 held) and 10,000 chats queued behind them.
/// Timed: one close, whose freed seat drains one queued chat.
fn free_seat_drains_one_of_10k_queued(criterion: &mut Criterion) {
    let mut router = site(5);
    let mut now = 1;
    let mut next_chat = 0usize;
    // 5,000 fill the seats, 10,000 wait.
    for _ in 0..N_AGENTS * 5 + N_CHATS {
        router
            .enqueue(&format!("c{next_chat}"), &department(next_chat), 0, now)
            .expect("new");
        next_chat += 1;
        now += 1;
    }
    assert_eq!(router.queue_snapshot(None).len(), N_CHATS);
    let mut oldest_held = 0usize;
    criterion.bench_function("free seat drains one of 10k queued", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let closing = format!("c{oldest_held}");
                oldest_held += 1;
                now += 1;
                let started = Instant::now();
                let effects = router.close(&closing, now).expect("held");
                total += started.elapsed();
                black_box(effects);
                router.forget_closed(&closing).expect("closed");
                router
                    .enqueue(&format!("c{next_chat}"), &department(next_chat), 0, now)
                    .expect("new");
                next_chat += 1;
            }
            total
        });
    });
}

/// 10,000 chats held (capacity 20, load 10 each): seats are free. Timed: one new chat,
/// assigned at once.
fn new_chat_assigned_while_agents_are_free(criterion: &mut Criterion) {
    let mut router = site(20);
    let mut now = 1;
    for chat_index in 0..N_CHATS {
        router
            .enqueue(
                &format!("held-{chat_index}"),
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
                let effects = router.enqueue(&arriving, &department, 0, now).expect("new");
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
    let mut router = site(5);
    let mut now = 1;
    for chat_index in 0..N_AGENTS * 5 + N_CHATS {
        router
            .enqueue(&format!("c{chat_index}"), &department(chat_index), 0, now)
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
                let effects = router.enqueue(&arriving, &department, 0, now).expect("new");
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
    new_chat_assigned_while_agents_are_free,
    new_chat_queued_behind_10k
);
criterion_main!(benches);
