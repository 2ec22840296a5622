//! PostgreSQL for the cluster tests (issue 13).
//!
//! - [`scratch_url`]: a fresh database on the shared server (`SALAM_TEST_POSTGRES_URL`,
//!   started by `.ci/run`), for tests that only need a database.
//! - [`PrivatePostgres`]: a server of the test's own (its own data directory and port),
//!   for tests that stop and start the database under the hubs' feet without
//!   disturbing the other tests. Made with Debian's `initdb` and `pg_ctl`; run as the
//!   `postgres` user when the tests run as root (PostgreSQL refuses root).

use anyhow::{Context, Result, bail};
use salam_store::postgres::scratch::ScratchDatabase;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh database on the shared test server, dropped with the value.
pub async fn scratch() -> Result<ScratchDatabase> {
    tokio::task::spawn_blocking(ScratchDatabase::create)
        .await?
        .context("a scratch PostgreSQL database (is the server of .ci/run up?)")
}

/// A PostgreSQL server of the test's own, stopped and deleted with the value.
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// The directory of Debian's PostgreSQL programs (the newest installed major version).
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (/usr/lib/postgresql; see .ci/run)")?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no pg_ctl under /usr/lib/postgresql/*/bin")
}

/// The `postgres` account's uid and gid, from /etc/passwd.
fn postgres_account() -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
        })
        .context("no postgres account in /etc/passwd")
}

fn running_as_root() -> bool {
    rustix::process::getuid().is_root()
}

impl PrivatePostgres {
    /// Initialises a data directory (trust authentication for the local `salam` role,
    /// loopback only) and starts the server on a free port.
    pub fn start() -> Result<PrivatePostgres> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("salam-pg").tempdir()?;
        if running_as_root() {
            let (uid, gid) = postgres_account()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let data = dir.path().join("data");
        let server = PrivatePostgres {
            bin,
            dir,
            port: crate::process::free_port()?,
        };
        server.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "salam",
                "-A",
                "trust",
                "--no-sync",
            ],
        )?;
        server.start_server()?;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when root).
    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let path = self.bin.join(program);
        let output = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        } else {
            Command::new(&path)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        }
        .with_context(|| format!("cannot run {}", path.display()))?;
        if !output.status.success() {
            bail!(
                "{program} {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn start_server(&self) -> Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.dir.path().join("server.log").display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    /// Stops the server (`fast`: open connections are cut, as when the database host
    /// goes away).
    pub fn stop(&self) -> Result<()> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        )
    }

    /// Starts it again after [`PrivatePostgres::stop`].
    pub fn restart(&self) -> Result<()> {
        self.start_server()
    }

    /// The URL of the `postgres` database as the `salam` role.
    pub fn url(&self) -> String {
        format!("postgres://salam@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The data directory (exists while the value lives).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
