//! Throwaway PostgreSQL databases for tests and benchmarks: each [`ScratchDatabase`]
//! is a fresh, empty database on the server at `SALAM_TEST_POSTGRES_URL` (default
//! `postgres://salam:salam@127.0.0.1:5432/postgres`, the role `.ci/run` creates),
//! dropped again when the value is dropped.

use super::map_err;
use crate::StoreError;

/// The server tests use when `SALAM_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_TEST_URL: &str = "postgres://salam:salam@127.0.0.1:5432/postgres";

/// A database created for one test, dropped with this value.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates an empty database with a random name. Blocking.
    pub fn create() -> Result<ScratchDatabase, StoreError> {
        let admin_url =
            std::env::var("SALAM_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.into());
        let name = crate::sqlite::new_id("salam_test");
        let mut client = super::connect(&super::config_of(&admin_url)?)?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(map_err)?;
        let mut config: pg::Config = admin_url
            .parse()
            .map_err(|err| StoreError::Unavailable(format!("invalid PostgreSQL URL: {err}")))?;
        config.dbname(&name);
        let url = url_of(&config, &name);
        Ok(ScratchDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// The database's URL (`postgres://…/salam_test_…`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Rebuilds a URL for `name` from a parsed configuration (user, password, first host
/// and port).
fn url_of(config: &pg::Config, name: &str) -> String {
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|password| format!(":{}", String::from_utf8_lossy(password)))
        .unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(pg::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{user}{password}@{host}:{port}/{name}")
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // On its own thread: the synchronous client must not run on an async runtime's
        // thread, and a test may drop this inside one.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(config) = super::config_of(&admin_url)
                && let Ok(mut client) = super::connect(&config)
            {
                let _ =
                    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        })
        .join();
    }
}
