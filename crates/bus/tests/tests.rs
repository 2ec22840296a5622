//! Integration tests of the bus client against a real `nats-server` (one per test, on a
//! free port) and against fake servers that misbehave.

mod support;
