//! Integration tests of the bus client against a real `nats-server` (one per test, on a
//! free port) and against fake servers that misbehave.

mod support;

/// Servers that send garbage, lie about sizes or say nothing.
mod hostile;
/// Publish/subscribe: wildcards, echo off, unsubscribe, order, sizes, subjects.
mod pubsub;
/// Server restarts and credentials.
mod reconnect;
/// Request/reply, no responders, timeouts.
mod request;
/// Bounded queues in and out.
mod slow_consumer;
