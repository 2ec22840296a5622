//! Spreading a relay run over the hubs of one cluster (issue 13).
//!
//! `salam-loadgen relay --addr A --addr B --addr C` connects visitor `i` to the
//! `i mod 3`-th address, and agent connection `j` to the `j mod n`-th of the
//! `--agent-addr` addresses (by default the same list). All agent connections are the
//! same agent, so every one of them receives every message; to measure the way across
//! the cluster (visitor's hub → bus → agent's hub), an agent connection counts a
//! message only when it is on another address than the message's visitor. With one
//! address in all, every delivery counts, as before.

use anyhow::{Result, bail};

/// Which address each visitor and agent connection of a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    visitors: Vec<String>,
    agents: Vec<String>,
}

impl Spread {
    /// Visitors round-robin over `visitor_addrs`, agents over `agent_addrs` (empty:
    /// the visitors' addresses). Refuses a spread where the visitors of some address
    /// would have no agent connection on another address, among the first `agents`.
    pub fn new(
        visitor_addrs: Vec<String>,
        agent_addrs: Vec<String>,
        agents: usize,
    ) -> Result<Spread> {
        if visitor_addrs.is_empty() {
            bail!("a relay run needs at least one --addr");
        }
        let agents_addrs = if agent_addrs.is_empty() {
            visitor_addrs.clone()
        } else {
            agent_addrs
        };
        let spread = Spread {
            visitors: visitor_addrs,
            agents: agents_addrs,
        };
        if spread.crosses() && agents > 0 {
            for visitor_addr in &spread.visitors {
                let served =
                    (0..agents as u64).any(|agent| spread.agent_addr(agent) != visitor_addr);
                if !served {
                    bail!(
                        "the visitors on {visitor_addr} have no agent connection on another \
                         hub: give more --agents or another --agent-addr"
                    );
                }
            }
        }
        Ok(spread)
    }

    /// Whether the run uses more than one address (then only cross-hub deliveries count).
    pub fn crosses(&self) -> bool {
        let first = &self.visitors[0];
        self.visitors
            .iter()
            .chain(&self.agents)
            .any(|addr| addr != first)
    }

    /// The address visitor number `visitor` connects to.
    pub fn visitor_addr(&self, visitor: u64) -> &str {
        &self.visitors[(visitor % self.visitors.len() as u64) as usize]
    }

    /// The address agent connection number `agent` connects to.
    pub fn agent_addr(&self, agent: u64) -> &str {
        &self.agents[(agent % self.agents.len() as u64) as usize]
    }

    /// Whether agent connection `agent` counts a message from a visitor on
    /// `visitor_addr`: always with one address, else only across hubs.
    pub fn counts(&self, agent: u64, visitor_addr: &str) -> bool {
        !self.crosses() || self.agent_addr(agent) != visitor_addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<String> {
        list.iter().map(|addr| (*addr).to_owned()).collect()
    }

    #[test]
    fn one_address_counts_every_delivery() {
        let spread = Spread::new(addrs(&["a"]), Vec::new(), 3).unwrap();
        assert!(!spread.crosses());
        assert_eq!(spread.visitor_addr(7), "a");
        assert_eq!(spread.agent_addr(2), "a");
        assert!(spread.counts(0, "a"));
    }

    #[test]
    fn several_addresses_round_robin_and_count_only_across_hubs() {
        let spread = Spread::new(addrs(&["a", "b", "c"]), Vec::new(), 3).unwrap();
        assert!(spread.crosses());
        let visitors: Vec<&str> = (0..4).map(|visitor| spread.visitor_addr(visitor)).collect();
        assert_eq!(visitors, ["a", "b", "c", "a"]);
        assert_eq!(spread.agent_addr(1), "b");
        assert!(!spread.counts(1, "b"));
        assert!(spread.counts(1, "a"));
        assert!(spread.counts(0, "c"));
    }

    #[test]
    fn agents_on_their_own_address() {
        let spread = Spread::new(addrs(&["b", "c"]), addrs(&["a"]), 1).unwrap();
        assert!(spread.counts(0, "b") && spread.counts(0, "c"));
    }

    #[test]
    fn refuses_visitors_without_an_agent_on_another_hub() {
        // One agent connection, on a: the visitors on a would wait forever.
        assert!(Spread::new(addrs(&["a", "b"]), Vec::new(), 1).is_err());
        assert!(Spread::new(addrs(&["a", "b"]), addrs(&["a"]), 2).is_err());
        assert!(Spread::new(Vec::new(), Vec::new(), 1).is_err());
        // Without agents nothing is delivered, so nothing to refuse.
        assert!(Spread::new(addrs(&["a", "b"]), Vec::new(), 0).is_ok());
    }
}
