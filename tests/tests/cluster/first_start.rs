//! A new cluster's first start, and migrations, with several processes at once.

use anyhow::{Context, Result, ensure};
use salam_e2e::process::{Api, HubProcess};
use salam_e2e::salam_binary;

/// Three hubs started together on one new PostgreSQL database. The migrations are
/// applied once (under their advisory lock) and the first start's demo site and admin
/// are created once. Until the hubs share a message bus, exactly one of them may serve
/// the database: the other two exit with an error that says why, instead of splitting
/// the agents and queues between three routers. Once the serving hub stops, another
/// hub takes the database over and finds the same site and admin (and creates none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hub_serves_a_database_and_the_first_start_happens_once() -> Result<()> {
    let database = salam_e2e::postgres::scratch().await?;
    let config = format!("[store]\nurl = \"{}\"\n", database.url());
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let (one, two, three) = tokio::join!(
        HubProcess::start(dirs[0].path(), &config),
        HubProcess::start(dirs[1].path(), &config),
        HubProcess::start(dirs[2].path(), &config),
    );
    let mut serving = Vec::new();
    let mut refusals = Vec::new();
    for started in [one, two, three] {
        match started {
            Ok(hub) => serving.push(hub),
            Err(err) => refusals.push(format!("{err:#}")),
        }
    }
    ensure!(
        serving.len() == 1,
        "{} hubs serve one database (expected exactly one); refusals: {refusals:?}",
        serving.len()
    );
    for refusal in &refusals {
        ensure!(
            refusal.contains("another hub is serving this PostgreSQL database"),
            "a hub failed for another reason: {refusal}"
        );
    }
    let mut hub = serving.pop().context("the serving hub")?;
    let first = hub.first()?.clone();
    let admin = Api::login(hub.addr, &first.admin_email, &first.admin_password).await?;
    let sites = admin.get("/api/sites").await?;
    let sites = sites["sites"]
        .as_array()
        .context("a list of sites")?
        .clone();
    ensure!(
        sites.len() == 1 && sites[0]["key"] == first.site_key.as_str(),
        "the hub lists {sites:?}, not the one demo site {}",
        first.site_key
    );

    // The serving hub dies; another takes the database over.
    hub.kill().await?;
    let next = HubProcess::start(dirs[1].path(), &config).await?;
    ensure!(
        next.first_start.is_none(),
        "the second start created the demo site or the admin again"
    );
    let admin = Api::login(next.addr, &first.admin_email, &first.admin_password).await?;
    let again = admin.get("/api/sites").await?;
    ensure!(
        again["sites"].as_array().map(Vec::len) == Some(1),
        "the next hub lists {again}"
    );
    Ok(())
}

/// `salam migrate` run by three processes at once on a new database: each succeeds and
/// reports the same schema version; a second run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_safe_to_run_at_once() -> Result<()> {
    let database = salam_e2e::postgres::scratch().await?;
    let binary = tokio::task::spawn_blocking(salam_binary).await??;
    let migrate = || {
        let data = tempfile::tempdir().expect("temp dir");
        let binary = binary.clone();
        let url = database.url().to_owned();
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new(&binary)
                .arg("--data")
                .arg(data.path())
                .arg("migrate")
                .env("SALAM_DATABASE_URL", url)
                .output()?;
            ensure!(
                output.status.success(),
                "salam migrate failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            anyhow::Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        })
    };
    let (a, b, c) = tokio::join!(migrate(), migrate(), migrate());
    let outputs = [a??, b??, c??];
    ensure!(
        outputs
            .iter()
            .all(|out| out == &outputs[0]
                && out.starts_with("PostgreSQL database at schema version ")),
        "the runs disagree: {outputs:?}"
    );
    let again = migrate().await??;
    ensure!(again == outputs[0], "a second run said {again:?}");
    Ok(())
}
