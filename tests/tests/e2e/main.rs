//! End-to-end tests of the hub through its real interfaces (one test binary).

mod admin;
mod auth;
mod bad_input;
mod bot;
mod control;
mod crash;
mod delivery;
mod lifecycle;
mod login;
mod operations;
mod routing;
mod slots;
