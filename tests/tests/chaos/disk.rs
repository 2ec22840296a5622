//! Chaos 4: the database's disk fills up, or turns read-only, under the hub's feet; or
//! (issue 13) the hub's PostgreSQL server stops for 10 s.
//!
//! The faults are real: the hub's data directory is a 16 MiB tmpfs that the test fills
//! with a big file (then deletes), or an ext4 image on a loop device that the kernel
//! forces read-only (`/sys/fs/ext4/DEV/trigger_fs_error`, the same path as an ext4
//! mounted `errors=remount-ro` hitting an I/O error). A plain `mount -o remount,ro`
//! cannot do it: the kernel refuses it (EBUSY) while SQLite holds the database open
//! for writing.
//!
//! Checked, with visitors sending continuously: while the fault lasts the hub answers
//! `error` `store_unavailable` naming the send (never an `ack` for something it could
//! not store), answers every send (no hang), and stays up; once it can write again
//! (space freed; or the disk remounted and the hub restarted, as an operator would after
//! the kernel made it read-only), refused sends resent with the same client id are
//! acknowledged and stored once, new messages are acknowledged, and everything
//! acknowledged before or during the fault is stored at its sequence.

use crate::support::{World, add_agents, eventually, scale, serial};
use anyhow::{Context, Result, bail, ensure};
use salam_e2e::process::{agent_session, check_history};
use salam_e2e::resending::{Phase, Writer};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const CONFIG: &str = r#"
[limits]
rate_per_sec = 1000
burst = 1000

[routing]
default_capacity = 100
auto_close_secs = 0
"#;

/// For the read-only case every commit is fsynced, so what was acknowledged before the
/// kernel stopped all writes is on the disk (with `NORMAL`, a commit sits in the page
/// cache until a checkpoint, and a device failure may lose it: power-loss semantics).
const CONFIG_SYNC: &str = r#"
[limits]
rate_per_sec = 1000
burst = 1000

[routing]
default_capacity = 100
auto_close_secs = 0

[store]
synchronous_full = true
"#;

/// Runs a command; fails with its output.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (is it installed?)"))?;
    ensure!(
        output.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

fn require_root() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?");
    ensure!(
        uid == "0",
        "the disk-fault chaos tests mount filesystems and must run as root (uid is {uid}); \
         they do not skip themselves"
    );
    Ok(())
}

/// A filesystem mounted for one test; unmounted (lazily, in case a killed hub's files
/// are still being released) when dropped.
struct Mounted {
    dir: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// A plain directory, nothing mounted (the database-outage case: the hub's data
    /// directory is not what fails).
    fn plain(dir: &Path) -> Result<Mounted> {
        std::fs::create_dir_all(dir)?;
        Ok(Mounted {
            dir: dir.to_path_buf(),
            mounted: false,
        })
    }

    fn tmpfs(dir: &Path, size: &str) -> Result<Mounted> {
        require_root()?;
        std::fs::create_dir_all(dir)?;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                &dir.display().to_string(),
            ],
        )
        .context("cannot mount a tmpfs for the hub's data")?;
        Ok(Mounted {
            dir: dir.to_path_buf(),
            mounted: true,
        })
    }

    /// Mounts an ext4 image through a loop device, `errors=remount-ro`.
    fn ext4(image: &Path, dir: &Path) -> Result<Mounted> {
        require_root()?;
        std::fs::create_dir_all(dir)?;
        run(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                &image.display().to_string(),
                &dir.display().to_string(),
            ],
        )
        .context("cannot mount an ext4 image on a loop device for the hub's data")?;
        Ok(Mounted {
            dir: dir.to_path_buf(),
            mounted: true,
        })
    }

    /// The mount's line in /proc/mounts: (source, options).
    fn entry(&self) -> Result<(String, String)> {
        let dir = self.dir.canonicalize()?.display().to_string();
        std::fs::read_to_string("/proc/mounts")?
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.len() >= 4 && fields[1] == dir)
                    .then(|| (fields[0].to_owned(), fields[3].to_owned()))
            })
            .next_back()
            .with_context(|| format!("{dir} is not mounted"))
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            run("umount", &[&self.dir.display().to_string()])?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
    }
}

/// Fills the filesystem of `dir` with one file until the kernel says it is full.
fn fill(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path)?;
    for chunk in [1 << 20, 4096] {
        let block = vec![0x5a_u8; chunk];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(28) => break, // ENOSPC
                Err(err) => return Err(err.into()),
            }
        }
    }
    match file.sync_all() {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(28) => {}
        Err(err) => return Err(err.into()),
    }
    Ok(path)
}

/// How the fault is made and undone.
enum Fault {
    /// Fill the tmpfs; recover by deleting the filler.
    DiskFull,
    /// The kernel forces the ext4 filesystem read-only; recover by stopping the hub,
    /// remounting and starting it again.
    ReadOnly { image: PathBuf },
    /// The hub's PostgreSQL server stops (`pg_ctl stop -m fast`: every connection is
    /// cut) for 10 s (issue 13); recover by starting it again, the hub left running.
    DatabaseDown {
        postgres: salam_e2e::postgres::PrivatePostgres,
    },
}

impl Fault {
    fn name(&self) -> &'static str {
        match self {
            Fault::DiskFull => "full",
            Fault::ReadOnly { .. } => "read-only",
            Fault::DatabaseDown { .. } => "database down",
        }
    }
}

/// How long the database stays down.
const DATABASE_DOWN: Duration = Duration::from_secs(10);

async fn disk_fault(fault: Fault, mut mounted: Mounted, config: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let n_writers = 3 * scale() as usize;
    let data = mounted.dir.clone();
    let mut world = World::start_on(&data, config).await?;
    let addr = world.hub.addr;
    let site_id = world.site.id.clone();
    let agents = add_agents(
        &world.admin,
        "disk",
        |_| vec![site_id.clone()],
        1,
        Some(100),
    )
    .await?;
    let watcher = agent_session(addr, &agents[0].token).await?;
    let (refusals, recovered, mut backlogs) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Vec::new(),
    );
    let mut writers = Vec::new();
    for index in 0..n_writers {
        let writer = Writer::open(
            addr,
            &format!("w{index}"),
            &world.site.key,
            refusals.clone(),
            recovered.clone(),
        )
        .await?;
        backlogs.push(writer.backlog.clone());
        writers.push(writer);
    }
    let conversations: Vec<String> = writers.iter().map(|w| w.conversation.clone()).collect();
    let (phase_tx, phase_rx) = watch::channel(Phase::Before);
    let handles: Vec<_> = writers
        .into_iter()
        .map(|writer| tokio::spawn(writer.run(addr, phase_rx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    phase_tx.send_replace(Phase::Fault);
    let fault_started = Instant::now();
    let filler = match &fault {
        Fault::DiskFull => {
            let dir = data.clone();
            Some(tokio::task::spawn_blocking(move || fill(&dir)).await??)
        }
        Fault::ReadOnly { .. } => {
            let (source, _) = mounted.entry()?;
            let device = source.rsplit('/').next().unwrap_or_default().to_owned();
            std::fs::write(
                format!("/sys/fs/ext4/{device}/trigger_fs_error"),
                "chaos test\n",
            )
            .with_context(|| format!("cannot force {source} read-only"))?;
            let (_, options) = mounted.entry()?;
            ensure!(
                options.split(',').any(|o| o == "ro" || o == "emergency_ro"),
                "the filesystem is still writable after the forced error: {options}"
            );
            None
        }
        Fault::DatabaseDown { postgres } => {
            tokio::task::block_in_place(|| postgres.stop())?;
            None
        }
    };
    let refused_after = eventually(
        "the hub refusing a message (store_unavailable) on the faulty disk",
        Duration::from_secs(60),
        || {
            let n = refusals.load(Ordering::Relaxed);
            async move { Ok((n > 0).then_some(fault_started.elapsed())) }
        },
    )
    .await;
    if refused_after.is_err() {
        phase_tx.send_replace(Phase::Stop);
    }
    let refused_after = refused_after.map_err(|err| {
        err.context(format!(
            "the hub never refused a message while its disk was {}; log:\n{}",
            fault.name(),
            world.hub.log_tail(20)
        ))
    })?;
    // The fault lasts a while longer: sends keep being answered, the hub stays up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if matches!(fault, Fault::DatabaseDown { .. }) {
        let health = salam_e2e::http_request(addr, "GET", "/healthz", &[], "").await?;
        ensure!(
            health.status == 503 && health.body.contains("postgresql"),
            "/healthz with the database down answered {} {}",
            health.status,
            health.body
        );
        tokio::time::sleep(DATABASE_DOWN.saturating_sub(fault_started.elapsed())).await;
    }
    ensure!(
        world.hub.is_running(),
        "the hub died on the faulty disk; log:\n{}",
        world.hub.log_tail(30)
    );
    let refusals_during_fault = refusals.load(Ordering::Relaxed);

    match &fault {
        Fault::DiskFull => {
            if let Some(filler) = filler {
                std::fs::remove_file(filler)?;
            }
        }
        Fault::ReadOnly { image } => {
            world.hub.kill().await?;
            mounted.unmount()?;
            mounted = Mounted::ext4(image, &data)?;
            world.hub.restart().await?;
        }
        Fault::DatabaseDown { postgres } => {
            tokio::task::block_in_place(|| postgres.restart())?;
        }
    }
    phase_tx.send_replace(Phase::Recover);
    let recovery_started = Instant::now();
    let recover = eventually(
        "the hub acknowledging again once it can write",
        Duration::from_secs(60),
        || {
            let backlog: u64 = backlogs.iter().map(|b| b.load(Ordering::Relaxed)).sum();
            let n = recovered.load(Ordering::Relaxed);
            async move { Ok((backlog == 0 && n >= 20 * n_writers as u64).then_some(())) }
        },
    )
    .await;
    let recovered_after = recovery_started.elapsed();
    if matches!(fault, Fault::DatabaseDown { .. }) {
        let health = salam_e2e::http_request(addr, "GET", "/healthz", &[], "").await?;
        ensure!(
            health.status == 200,
            "/healthz after the database came back answered {} {}",
            health.status,
            health.body
        );
    }
    phase_tx.send_replace(Phase::Stop);
    let mut finished = Vec::new();
    for handle in handles {
        finished.push(
            tokio::time::timeout(Duration::from_secs(90), handle)
                .await
                .context("a writer never finished")??,
        );
    }
    drop(watcher);

    let mut problems = Vec::new();
    if let Err(err) = recover {
        problems.push(format!("{err:#}"));
    }
    let mut stored = HashMap::new();
    for conversation in &conversations {
        let history = world.admin.history(conversation).await?;
        match check_history(conversation, &history) {
            Ok(by_client) => {
                stored.extend(by_client);
            }
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    let mut acked_in: HashMap<&str, usize> = HashMap::new();
    for writer in &finished {
        problems.extend(
            writer
                .violations
                .iter()
                .map(|v| format!("{}: {v}", writer.name)),
        );
        for (label, n) in &writer.acked_in {
            *acked_in.entry(label).or_default() += n;
        }
        for (client_id, seq) in &writer.acked {
            if stored.get(client_id) != Some(seq) {
                problems.push(format!(
                    "{client_id} was acknowledged as seq {seq} but is stored as {:?}",
                    stored.get(client_id)
                ));
            }
        }
    }
    println!(
        "chaos disk ({}, {:.1} s): acknowledged {acked_in:?}; first refusal {:.1} s into the fault, \
         {refusals_during_fault} refusals during it; recovered in {:.1} s",
        fault.name(),
        started.elapsed().as_secs_f64(),
        refused_after.as_secs_f64(),
        recovered_after.as_secs_f64()
    );
    world.assert_no_panic()?;
    if !problems.is_empty() {
        bail!(
            "{} problem(s):\n{}\nhub log:\n{}",
            problems.len(),
            problems[..problems.len().min(30)].join("\n"),
            world.hub.log_tail(30)
        );
    }
    // The hub must be gone (not just signalled) before its filesystem can go.
    world.hub.kill().await?;
    drop(world);
    mounted.unmount()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_refused_not_acknowledged_and_recovered() -> Result<()> {
    let _serial = serial().await;
    let scratch = tempfile::tempdir()?;
    let mounted = Mounted::tmpfs(&scratch.path().join("data"), "16m")?;
    disk_fault(Fault::DiskFull, mounted, CONFIG).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_disk_is_refused_not_acknowledged_and_recovered() -> Result<()> {
    let _serial = serial().await;
    require_root()?;
    let scratch = tempfile::tempdir()?;
    let image = scratch.path().join("disk.img");
    std::fs::File::create(&image)?.set_len(32 << 20)?;
    run("mkfs.ext4", &["-q", "-F", &image.display().to_string()])
        .context("cannot make the ext4 image")?;
    let mounted = Mounted::ext4(&image, &scratch.path().join("data"))?;
    disk_fault(Fault::ReadOnly { image }, mounted, CONFIG_SYNC).await
}

/// Issue 13: the PostgreSQL server stops for 10 s under load. The hub answers
/// `store_unavailable` and acknowledges nothing it could not commit, stays up, and
/// recovers by itself (its writer and readers reconnect) once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_refused_not_acknowledged_and_recovered() -> Result<()> {
    let _serial = serial().await;
    let postgres =
        tokio::task::spawn_blocking(salam_e2e::postgres::PrivatePostgres::start).await??;
    let scratch = tempfile::tempdir()?;
    let mounted = Mounted::plain(&scratch.path().join("data"))?;
    let config = format!("{CONFIG}\n[store]\nurl = \"{}\"\n", postgres.url());
    disk_fault(Fault::DatabaseDown { postgres }, mounted, &config).await
}
