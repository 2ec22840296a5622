//! End-to-end tests of the REST API v1 (issue 17) through a real hub process, real HTTP
//! and real WebSockets: token scopes and revocation, site isolation, sending and
//! closing as the WebSocket handlers do, contacts with attribute history, bad input,
//! and Schemathesis against the generated OpenAPI document.

mod common;
mod contacts;
mod conversations;
mod customer_attributes;
mod hostile;
mod schemathesis;
mod scopes;
