//! The routing actor alone: commands per second it applies, with no store and no
//! sockets (its executor's queue is drained and dropped). Since the rework the actor
//! does no I/O, so this is its ceiling; `scripts/bench-control-plane.sh` measures the
//! whole path (store, frames) before and after.
//!
//! `cargo bench -p salam-hub --bench routing -- --warm-up-time 1 --measurement-time 3`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use salam_hub::routing::Command;
use salam_hub::routing::actor::Actor;
use salam_protocol::Presence;
use salam_routing::{RouterConfig, SitePolicy};
use salam_store::{Agent, AgentRole};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

const AGENTS: usize = 10;
const CHATS: usize = 1000;

fn agent(index: usize, sites: &[String]) -> Agent {
    Agent {
        id: format!("a_{index}"),
        email: format!("agent{index}@bench.test"),
        name: format!("Agent {index}"),
        role: AgentRole::Agent,
        all_sites: false,
        site_ids: sites.to_vec(),
        disabled: false,
        capacity: Some((CHATS / AGENTS) as u32),
        departments: Vec::new(),
        presence: Presence::Online,
    }
}

/// An actor with `sites` sites and `AGENTS` agents online on all of them.
fn actor(runtime: &tokio::runtime::Runtime, sites: usize) -> Actor {
    let (batches, mut drained) = mpsc::channel(1 << 16);
    runtime.spawn(async move { while drained.recv().await.is_some() {} });
    let (views, _) = watch::channel(Arc::default());
    let mut actor = Actor::new(RouterConfig::default(), batches, views);
    let site_ids: Vec<String> = (0..sites).map(|index| format!("s_{index}")).collect();
    for site in &site_ids {
        actor.handle(Command::Site {
            site_id: site.clone(),
            policy: SitePolicy::default(),
            callback_after_secs: 600,
        });
    }
    for index in 0..AGENTS {
        actor.handle(Command::Agent(Box::new(agent(index, &site_ids))));
        actor.handle(Command::Connected {
            agent_id: format!("a_{index}"),
            connection: index as u64,
        });
    }
    actor
}

fn storm(runtime: &tokio::runtime::Runtime, mut actor: Actor, sites: usize) {
    for chat in 0..CHATS {
        actor.handle(Command::HandOff {
            site_id: format!("s_{}", chat % sites),
            conversation: format!("c_{chat}"),
            department: String::new(),
            priority: 0,
            preferred_agent: None,
        });
    }
    runtime.block_on(actor.flush());
    for chat in 0..CHATS {
        actor.handle(Command::Closed {
            conversation: format!("c_{chat}"),
        });
    }
    runtime.block_on(actor.flush());
}

fn commands(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut group = criterion.benchmark_group("routing actor");
    group.throughput(Throughput::Elements(2 * CHATS as u64));
    for sites in [1, 10] {
        group.bench_function(
            format!("{CHATS} hand-offs then closes, {sites} site(s)"),
            |bench| {
                bench.iter_batched(
                    || actor(&runtime, sites),
                    |actor| storm(&runtime, actor, sites),
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, commands);
criterion_main!(benches);
