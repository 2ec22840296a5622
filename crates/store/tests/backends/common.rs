//! The backends each test runs on.

use salam_store::postgres::scratch::ScratchDatabase;
use salam_store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store};
use std::future::Future;
use std::sync::Arc;

/// What keeps a backend's data alive for one test.
#[allow(dead_code)]
enum Keep {
    File(tempfile::TempDir),
    Database(ScratchDatabase),
}

/// One backend, fresh and empty.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    _keep: Keep,
}

/// A fresh SQLite store in a temporary directory.
pub fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("salam.db"), SqliteOptions::default())
        .expect("open SQLite");
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        _keep: Keep::File(dir),
    }
}

/// A fresh PostgreSQL store in a scratch database. Fails (never skips) when the server
/// cannot be reached: the suite is meant to run on both.
pub async fn postgres() -> Backend {
    let (database, store) = tokio::task::spawn_blocking(|| {
        let database = ScratchDatabase::create().unwrap_or_else(|err| {
            panic!(
                "PostgreSQL is needed for this suite (SALAM_TEST_POSTGRES_URL, see .ci/run): {err}"
            )
        });
        let store = PostgresStore::connect(database.url(), PostgresOptions::default())
            .expect("connect to the scratch database");
        (database, store)
    })
    .await
    .expect("connect task");
    Backend {
        name: "postgres",
        store: Arc::new(store),
        _keep: Keep::Database(database),
    }
}

/// Runs `test` on a fresh store of each backend in turn; a panic names the backend.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in [sqlite(), postgres().await] {
        eprintln!("-- backend: {}", backend.name);
        test(backend.store.clone()).await;
        backend.store.flush().await.expect("flush");
    }
}
