//! The routing executor: carries out the actor's decisions, in order. State changes go
//! to the store as compare-and-set transitions (queued back to back, so a batch shares
//! group commits); their frames go out once they are committed.

use super::{Command, QueueEntry, Reply};
use crate::fanout::{Bus, Followers, Registry};
use crate::publish;
use salam_protocol::{
    AgentStatus, ConversationState, EventCode, Presence, ServerFrame, SystemEvent,
};
use salam_routing::{RequeueReason, RoutingError};
use salam_store::{PendingTransition, Store, StoreError, Transition, Transitioned};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;

/// One decision to carry out.
pub enum Work {
    /// The agent now holds the conversation (`from_agent` held it before a take-over or
    /// transfer).
    Assigned {
        conversation: String,
        agent: String,
        name: String,
        from_agent: Option<String>,
    },
    /// The agent must accept the conversation before `deadline`.
    Offered {
        conversation: String,
        agent: String,
        deadline: u64,
    },
    /// Back in a queue.
    Requeued {
        conversation: String,
        department: String,
        from_agent: Option<String>,
        reason: RequeueReason,
    },
    /// Missed its first-response target: a higher priority.
    Priority { conversation: String, priority: i32 },
    /// The agent's presence changed: every console of theirs shows it.
    Presence { agent: String, presence: Presence },
    /// Answer a take, accept or transfer of `conversation` (after the work before it).
    Reply { conversation: String, reply: Reply },
}

/// What the actor hands over after a run of commands.
pub struct Batch {
    pub work: Vec<Work>,
    /// Sites whose agent list changed, with the new list.
    pub agent_lists: Vec<(String, Vec<AgentStatus>)>,
    /// Waiting chats whose place or expected wait changed.
    pub places: Vec<QueueEntry>,
}

/// Performs the effects. Owns handles to the store and the bus, nothing of the actor's.
pub struct Executor {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub registry: Arc<Registry>,
    /// Webhook events for committed routing changes (issue 17).
    pub webhooks: crate::webhooks::Webhooks,
}

/// A transition queued in the store, with what to do once it is committed.
struct InFlight {
    pending: PendingTransition,
    after: After,
}

enum After {
    Assigned {
        agent: String,
        from_agent: Option<String>,
    },
    Requeued {
        from_agent: Option<String>,
    },
}

impl Executor {
    pub async fn run(self, mut batches: mpsc::Receiver<Batch>, feedback: mpsc::Sender<Command>) {
        while let Some(batch) = batches.recv().await {
            self.apply(batch, &feedback).await;
        }
    }

    async fn apply(&self, batch: Batch, feedback: &mpsc::Sender<Command>) {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        // Conversations whose change the store refused in this batch.
        let mut refused: HashSet<String> = HashSet::new();
        for work in batch.work {
            match work {
                Work::Assigned {
                    conversation,
                    agent,
                    name,
                    from_agent,
                } => {
                    let mut change = Transition::new(
                        &conversation,
                        &[
                            ConversationState::Bot,
                            ConversationState::Queued,
                            ConversationState::Assigned,
                        ],
                        ConversationState::Assigned,
                        crate::clock::now_ms(),
                    );
                    change.agent_id = Some(agent.clone());
                    change.handoff_reason = Some("taken".into());
                    change.event = Some(SystemEvent::new(EventCode::Joined, &[("agent", &name)]));
                    self.queue(
                        &mut in_flight,
                        change,
                        After::Assigned { agent, from_agent },
                    )
                    .await;
                }
                Work::Requeued {
                    conversation,
                    department,
                    from_agent,
                    reason,
                } => {
                    let mut change = Transition::new(
                        &conversation,
                        &[
                            ConversationState::Bot,
                            ConversationState::Queued,
                            ConversationState::Assigned,
                        ],
                        ConversationState::Queued,
                        crate::clock::now_ms(),
                    );
                    change.department = Some(department.clone());
                    change.handoff_reason = Some("transferred".into());
                    change.event = Some(match reason {
                        RequeueReason::TransferredToDepartment if !department.is_empty() => {
                            SystemEvent::new(
                                EventCode::TransferredToDepartment,
                                &[("department", &department)],
                            )
                        }
                        _ => SystemEvent::new(EventCode::Requeued, &[]),
                    });
                    // An offer withdrawn never left the queue in the store.
                    if reason == RequeueReason::OfferWithdrawn {
                        continue;
                    }
                    self.queue(&mut in_flight, change, After::Requeued { from_agent })
                        .await;
                }
                Work::Offered {
                    conversation,
                    agent,
                    deadline,
                } => {
                    self.settle(&mut in_flight, &mut refused, feedback).await;
                    publish::to_agent(
                        &*self.bus,
                        &agent,
                        &ServerFrame::Offer {
                            conversation,
                            agent: agent.clone(),
                            deadline: deadline as i64,
                        },
                    );
                }
                Work::Priority {
                    conversation,
                    priority,
                } => {
                    self.settle(&mut in_flight, &mut refused, feedback).await;
                    if let Err(err) = self.store.set_priority(&conversation, priority).await {
                        tracing::warn!(%conversation, error = %err, "priority not stored");
                    } else if let Ok(Some(found)) = self.store.conversation(&conversation).await {
                        publish::summary(&*self.bus, &found);
                    }
                }
                Work::Presence { agent, presence } => {
                    self.settle(&mut in_flight, &mut refused, feedback).await;
                    publish::to_agent(&*self.bus, &agent, &ServerFrame::Presence { presence });
                }
                Work::Reply {
                    conversation,
                    reply,
                } => {
                    self.settle(&mut in_flight, &mut refused, feedback).await;
                    let answer = if refused.contains(&conversation) {
                        Err(RoutingError::AlreadyClosed)
                    } else {
                        Ok(())
                    };
                    let _ = reply.send(answer);
                }
            }
        }
        self.settle(&mut in_flight, &mut refused, feedback).await;
        for (site, agents) in batch.agent_lists {
            publish::to_site(
                &*self.bus,
                &site.clone(),
                &ServerFrame::Agents { site, agents },
            );
        }
        for place in batch.places {
            publish::to_conversation(
                &*self.bus,
                &place.conversation,
                Followers::Visitors,
                None,
                &ServerFrame::Queue {
                    conversation: place.conversation.clone(),
                    position: place.position,
                    wait_secs: place.expected_wait_secs,
                    agents_online: place.agents_online,
                    offer_callback: place.offer_callback,
                },
            );
        }
    }

    /// Queues a transition behind the ones already queued (so they share commits).
    async fn queue(&self, in_flight: &mut VecDeque<InFlight>, change: Transition, after: After) {
        let conversation = change.conversation.clone();
        match self.store.transition_queued(change).await {
            Ok(pending) => in_flight.push_back(InFlight { pending, after }),
            Err(err) => {
                tracing::warn!(%conversation, error = %err, "routing change not queued");
            }
        }
    }

    /// Waits for the queued transitions in order and publishes what each changed.
    async fn settle(
        &self,
        in_flight: &mut VecDeque<InFlight>,
        refused: &mut HashSet<String>,
        feedback: &mpsc::Sender<Command>,
    ) {
        while let Some(InFlight { pending, after }) = in_flight.pop_front() {
            match pending.await {
                Ok(Transitioned::Applied {
                    conversation,
                    event,
                }) => {
                    match &after {
                        After::Assigned { agent, from_agent } => {
                            if let Some(previous) = from_agent {
                                self.bus
                                    .detach_agent(&self.registry, &conversation.id, previous);
                            }
                            self.bus
                                .attach_agent(&self.registry, &conversation.id, agent);
                        }
                        After::Requeued {
                            from_agent: Some(previous),
                        } => self
                            .bus
                            .detach_agent(&self.registry, &conversation.id, previous),
                        After::Requeued { from_agent: None } => {}
                    }
                    let transferred = match &after {
                        After::Assigned { from_agent, .. } => from_agent.is_some(),
                        After::Requeued { .. } => event.as_ref().is_some_and(|line| {
                            line.event
                                .as_ref()
                                .is_some_and(|code| code.code == EventCode::TransferredToDepartment)
                        }),
                    };
                    crate::webhooks::events::state_changed(
                        &self.webhooks,
                        &conversation,
                        event.as_deref(),
                        transferred,
                    )
                    .await;
                    let reason = event.as_ref().map(|line| line.text.clone());
                    publish::state_changed(
                        &*self.bus,
                        &conversation,
                        event.map(|line| *line),
                        reason.as_deref(),
                    );
                }
                Ok(Transitioned::Stale(current)) => {
                    tracing::debug!(conversation = %current.id, state = ?current.state, "stale routing change refused");
                    refused.insert(current.id.clone());
                    let command = Command::Reconcile {
                        conversation: current.id.clone(),
                        state: current.state,
                    };
                    // Never wait on the actor here (it may be waiting on us): a full queue
                    // gets the command from a task of its own.
                    if let Err(mpsc::error::TrySendError::Full(command)) =
                        feedback.try_send(command)
                    {
                        let feedback = feedback.clone();
                        tokio::spawn(async move {
                            let _ = feedback.send(command).await;
                        });
                    }
                }
                Err(StoreError::NotFound) => {}
                Err(err) => tracing::warn!(error = %err, "routing change not stored"),
            }
        }
    }
}
