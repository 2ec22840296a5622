//! Schemathesis (installed by `.ci/run` in `target/venv`) against a live hub with an
//! admin API token: every generated request, valid or not, gets a documented answer
//! (no 5xx, status codes, content types, headers and bodies as the OpenAPI document
//! says). Without Schemathesis this test fails; it never skips.

use crate::common::{create_token, v1, visitor_with_conversation};
use anyhow::{Context, ensure};
use serde_json::json;
use std::path::PathBuf;

fn schemathesis() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target/venv/bin/schemathesis")
}

#[tokio::test]
async fn schemathesis_finds_nothing_against_the_live_hub() -> anyhow::Result<()> {
    let binary = schemathesis();
    ensure!(
        binary.exists(),
        "{} is missing: .ci/run installs it (python3 -m venv target/venv && \
         target/venv/bin/pip install schemathesis==4.32.5)",
        binary.display()
    );
    let world = salam_e2e::process::World::start("").await?;
    let agent_id = world
        .admin
        .create_agent(
            "sam@shop.test",
            "a-long-password-1",
            std::slice::from_ref(&world.site.id),
            None,
        )
        .await?;
    let (_, token) = create_token(&world.admin, &world.site.id, "admin").await?;
    let api = v1(&world, &token);
    // Data for the operations to find: a conversation with an agent's reply, a contact.
    let (mut visitor, conversation) = visitor_with_conversation(&world, "hello there").await?;
    api.expect(
        201,
        "POST",
        &format!("/api/v1/conversations/{conversation}/messages"),
        Some(&json!({"sender": {"type": "agent", "agent_id": agent_id}, "text": "Hi!", "client_id": "seed"})),
    )
    .await?;
    let contact = api
        .expect(
            201,
            "POST",
            "/api/v1/contacts",
            Some(&json!({"name": "Seed", "external_id": "seed-1", "attributes": {"plan": "pro"}})),
        )
        .await?;
    let contact_id = contact["id"].as_str().context("contact id")?;
    let request_id =
        crate::common::offline_request(&world, &api, &mut visitor, &conversation).await?;

    let scratch = tempfile::tempdir()?;
    let config = scratch.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[[operations]]\ninclude-path-regex = \"^/api/v1/conversations/\"\n\
             parameters = {{ \"path.id\" = \"{conversation}\" }}\n\n\
             [[operations]]\ninclude-path-regex = \"^/api/v1/contacts/\"\n\
             parameters = {{ \"path.id\" = \"{contact_id}\" }}\n\n\
             [[operations]]\ninclude-path-regex = \"^/api/v1/offline-requests/\"\n\
             parameters = {{ \"path.id\" = {request_id} }}\n"
        ),
    )?;
    let url = format!("http://{}/api/openapi.json", world.hub.addr);
    // Cases per operation: 25 keeps the run well under a minute; more for a deeper run.
    let examples = std::env::var("SALAM_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let output = tokio::process::Command::new(&binary)
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &url, "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .args([
            "--checks",
            "all",
            "--max-examples",
            &examples,
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}\nhub log:\n{}",
        output.status,
        world.hub.log_tail(40)
    );
    // It ran, and tested every operation of the document.
    let document =
        salam_e2e::http_request(world.hub.addr, "GET", "/api/openapi.json", &[], "").await?;
    let document: serde_json::Value = serde_json::from_str(&document.body)?;
    let operations: usize = document["paths"]
        .as_object()
        .context("paths")?
        .values()
        .map(|item| item.as_object().map_or(0, |item| item.len()))
        .sum();
    ensure!(operations >= 15, "{operations} operations");
    ensure!(
        stdout.contains(&format!("Tested: {operations}")),
        "{stdout}"
    );
    world.assert_no_panic()
}
