//! Routing commands as they travel to the routing owner, and the owner's answers and
//! views (pure: no I/O).
//!
//! A command that only the store can complete travels as a notice and the owner reads
//! the rest: an agent changed travels as its id (the owner reads the account), so a
//! slow bus never carries a stale account over a fresh one.

use crate::routing::{Command, SiteView, Target, View};
use salam_protocol::{AgentStatus, Presence};
use salam_routing::{RoutingError, SitePolicy};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A command for the routing owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum Forwarded {
    /// An agent account changed: the owner reads it from the store.
    AgentChanged {
        agent_id: String,
    },
    Connected {
        agent_id: String,
        connection: u64,
    },
    Disconnected {
        agent_id: String,
        connection: u64,
    },
    Presence {
        agent_id: String,
        presence: Presence,
    },
    Site {
        site_id: String,
        accept_timeout_ms: Option<u64>,
        first_response_target_ms: Option<u64>,
        callback_after_secs: u64,
    },
    HandOff {
        site_id: String,
        conversation: String,
        department: String,
        priority: i32,
        preferred_agent: Option<String>,
    },
    Closed {
        conversation: String,
    },
    Responded {
        conversation: String,
    },
    Take {
        agent_id: String,
        site_id: String,
        conversation: String,
    },
    Accept {
        agent_id: String,
        conversation: String,
    },
    Transfer {
        site_id: String,
        conversation: String,
        to_agent: Option<String>,
        to_department: Option<String>,
    },
}

/// How a command goes to the owner.
pub enum Outgoing {
    /// Published; no answer.
    Tell(Forwarded),
    /// Asked; the answer goes to the reply.
    Ask(Forwarded, crate::routing::Reply),
    /// Agent account: read the account, send its id.
    AgentChanged(String),
    /// Never leaves the hub (the owner's own bookkeeping).
    Local,
}

/// What of `command` travels.
pub fn outgoing(command: Command) -> Outgoing {
    use Forwarded as F;
    match command {
        Command::Agent(agent) => Outgoing::AgentChanged(agent.id),
        Command::Connected {
            agent_id,
            connection,
        } => Outgoing::Tell(F::Connected {
            agent_id,
            connection,
        }),
        Command::Disconnected {
            agent_id,
            connection,
        } => Outgoing::Tell(F::Disconnected {
            agent_id,
            connection,
        }),
        Command::Presence { agent_id, presence } => {
            Outgoing::Tell(F::Presence { agent_id, presence })
        }
        Command::Site {
            site_id,
            policy,
            callback_after_secs,
        } => Outgoing::Tell(F::Site {
            site_id,
            accept_timeout_ms: policy.accept_timeout_ms,
            first_response_target_ms: policy.first_response_target_ms,
            callback_after_secs,
        }),
        Command::HandOff {
            site_id,
            conversation,
            department,
            priority,
            preferred_agent,
        } => Outgoing::Tell(F::HandOff {
            site_id,
            conversation,
            department,
            priority,
            preferred_agent,
        }),
        Command::Closed { conversation } => Outgoing::Tell(F::Closed { conversation }),
        Command::Responded { conversation } => Outgoing::Tell(F::Responded { conversation }),
        Command::Take {
            agent_id,
            site_id,
            conversation,
            reply,
        } => Outgoing::Ask(
            F::Take {
                agent_id,
                site_id,
                conversation,
            },
            reply,
        ),
        Command::Accept {
            agent_id,
            conversation,
            reply,
        } => Outgoing::Ask(
            F::Accept {
                agent_id,
                conversation,
            },
            reply,
        ),
        Command::Transfer {
            site_id,
            conversation,
            to,
            reply,
        } => {
            let (to_agent, to_department) = match to {
                Target::Agent(agent) => (Some(agent), None),
                Target::Department(department) => (None, Some(department)),
            };
            Outgoing::Ask(
                F::Transfer {
                    site_id,
                    conversation,
                    to_agent,
                    to_department,
                },
                reply,
            )
        }
        Command::Reconcile { .. } | Command::Restore(_) | Command::Tick | Command::Reset => {
            Outgoing::Local
        }
    }
}

/// The owner's command for a forwarded one (`reply` for those that ask). `None`: an
/// agent change, which the owner completes from the store.
pub fn incoming(forwarded: Forwarded, reply: Option<crate::routing::Reply>) -> Option<Command> {
    use Forwarded as F;
    let ask = |reply: Option<crate::routing::Reply>| {
        reply.unwrap_or_else(|| tokio::sync::oneshot::channel().0)
    };
    Some(match forwarded {
        F::AgentChanged { .. } => return None,
        F::Connected {
            agent_id,
            connection,
        } => Command::Connected {
            agent_id,
            connection,
        },
        F::Disconnected {
            agent_id,
            connection,
        } => Command::Disconnected {
            agent_id,
            connection,
        },
        F::Presence { agent_id, presence } => Command::Presence { agent_id, presence },
        F::Site {
            site_id,
            accept_timeout_ms,
            first_response_target_ms,
            callback_after_secs,
        } => Command::Site {
            site_id,
            policy: SitePolicy {
                accept_timeout_ms,
                first_response_target_ms,
            },
            callback_after_secs,
        },
        F::HandOff {
            site_id,
            conversation,
            department,
            priority,
            preferred_agent,
        } => Command::HandOff {
            site_id,
            conversation,
            department,
            priority,
            preferred_agent,
        },
        F::Closed { conversation } => Command::Closed { conversation },
        F::Responded { conversation } => Command::Responded { conversation },
        F::Take {
            agent_id,
            site_id,
            conversation,
        } => Command::Take {
            agent_id,
            site_id,
            conversation,
            reply: ask(reply),
        },
        F::Accept {
            agent_id,
            conversation,
        } => Command::Accept {
            agent_id,
            conversation,
            reply: ask(reply),
        },
        F::Transfer {
            site_id,
            conversation,
            to_agent,
            to_department,
        } => Command::Transfer {
            site_id,
            conversation,
            to: match to_agent {
                Some(agent) => Target::Agent(agent),
                None => Target::Department(to_department.unwrap_or_default()),
            },
            reply: ask(reply),
        },
    })
}

/// Whether a forwarded command asks for an answer.
pub fn asks(forwarded: &Forwarded) -> bool {
    matches!(
        forwarded,
        Forwarded::Take { .. } | Forwarded::Accept { .. } | Forwarded::Transfer { .. }
    )
}

/// The owner's answer to a take, accept or transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const ERRORS: [RoutingError; 11] = [
    RoutingError::UnknownAgent,
    RoutingError::UnknownConversation,
    RoutingError::OverCapacity,
    RoutingError::NotAvailable,
    RoutingError::NotOnSite,
    RoutingError::WrongSite,
    RoutingError::AlreadyClosed,
    RoutingError::AlreadyRouted,
    RoutingError::NotOffered,
    RoutingError::NotClosed,
    RoutingError::UnservedDepartment,
];

impl Answer {
    pub fn of(result: Result<(), RoutingError>) -> Answer {
        Answer {
            error: result.err().map(|err| format!("{err:?}")),
        }
    }

    /// The result it stands for; an error this hub does not know reads as
    /// `NotAvailable`.
    pub fn result(&self) -> Result<(), RoutingError> {
        match &self.error {
            None => Ok(()),
            Some(name) => Err(ERRORS
                .iter()
                .copied()
                .find(|err| format!("{err:?}") == *name)
                .unwrap_or(RoutingError::NotAvailable)),
        }
    }
}

/// The owner's views as they travel.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WireView {
    pub sites: Vec<(String, SiteView)>,
    pub agents: Vec<AgentStatus>,
}

impl WireView {
    pub fn of(view: &View) -> WireView {
        WireView {
            sites: view
                .sites
                .iter()
                .map(|(id, site)| (id.clone(), (**site).clone()))
                .collect(),
            agents: view.agents.values().cloned().collect(),
        }
    }

    pub fn into_view(self) -> View {
        View {
            sites: self
                .sites
                .into_iter()
                .map(|(id, site)| (id, Arc::new(site)))
                .collect(),
            agents: self
                .agents
                .into_iter()
                .map(|agent| (agent.id.clone(), agent))
                .collect(),
        }
    }
}

/// A hub's heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alive {
    pub hub: u16,
    /// This run of the hub (its start time in microseconds): a hub number seen with a
    /// new incarnation restarted, and the sockets it had before are gone.
    #[serde(default)]
    pub incarnation: u64,
    /// Whether it owns routing (a hub that missed the owner's announcement learns of
    /// the new owner from its heartbeat).
    #[serde(default)]
    pub owner: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_trip() {
        for err in ERRORS {
            let answer: Answer =
                serde_json::from_slice(&serde_json::to_vec(&Answer::of(Err(err))).unwrap())
                    .unwrap();
            assert_eq!(answer.result(), Err(err));
        }
        assert_eq!(Answer::of(Ok(())).result(), Ok(()));
        let unknown = Answer {
            error: Some("Whatever".into()),
        };
        assert_eq!(unknown.result(), Err(RoutingError::NotAvailable));
    }

    #[test]
    fn a_transfer_travels_and_comes_back_the_same() {
        let (reply, _answer) = tokio::sync::oneshot::channel();
        let command = Command::Transfer {
            site_id: "s".into(),
            conversation: "c".into(),
            to: Target::Department("sales".into()),
            reply,
        };
        let Outgoing::Ask(forwarded, _) = outgoing(command) else {
            panic!("a transfer asks");
        };
        assert!(asks(&forwarded));
        let text = serde_json::to_string(&forwarded).unwrap();
        let back: Forwarded = serde_json::from_str(&text).unwrap();
        assert_eq!(back, forwarded);
        let Some(Command::Transfer {
            to: Target::Department(department),
            ..
        }) = incoming(back, None)
        else {
            panic!("a transfer");
        };
        assert_eq!(department, "sales");
    }

    #[test]
    fn local_commands_stay_local() {
        assert!(matches!(outgoing(Command::Tick), Outgoing::Local));
        assert!(matches!(outgoing(Command::Reset), Outgoing::Local));
    }
}
