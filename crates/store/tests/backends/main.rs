//! One store test suite, run against every backend: the embedded SQLite file and a
//! real PostgreSQL database (issue 13). Each test is written once against
//! `&dyn Store` and runs on both; a difference between the backends is a failure.
//!
//! PostgreSQL is the server at `SALAM_TEST_POSTGRES_URL` (default
//! `postgres://salam:salam@127.0.0.1:5432/postgres`, which `.ci/run` starts and
//! creates); every test gets a fresh database, dropped after it.

mod common;
mod conversations;
mod cross_hub;
mod directory;
mod email;
mod frame;
mod maintenance;
mod rest;
