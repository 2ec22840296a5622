//! axe-core (pinned in `tests/axe`, installed by `.ci/run` or `npm ci --prefix tests/axe
//! --ignore-scripts`) run inside a page: the browser tests' accessibility check.

use anyhow::{Context, Result, ensure};
use fantoccini::Client;
use std::path::Path;

/// Injects axe-core into the page and runs it on `context`, a JavaScript expression for
/// the part of the page to check (`document`, or the widget's host element: axe
/// includes open shadow roots). Fails on any serious or critical violation, naming the
/// rule and the first elements, with `what` saying which page it was.
pub async fn check(client: &Client, context: &str, what: &str) -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("axe/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is missing: run `npm ci --prefix tests/axe --ignore-scripts`",
            path.display()
        )
    })?;
    client
        .execute(&format!("{source}\nreturn true;"), vec![])
        .await?;
    let found = client
        .execute_async(
            &format!(
                "const done = arguments[arguments.length - 1];
                 axe.run({context}, {{ resultTypes: ['violations'] }})
                   .then((result) => done(result.violations
                     .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                     .map((v) => ({{ id: v.id, impact: v.impact, help: v.help,
                       nodes: v.nodes.slice(0, 5)
                         .map((n) => `${{n.target.join(' ')}}: ${{n.failureSummary}}`) }}))))
                   .catch((err) => done([{{ id: 'axe-failed', help: String(err) }}]));"
            ),
            vec![],
        )
        .await?;
    ensure!(
        found.as_array().is_some_and(Vec::is_empty),
        "axe-core found serious or critical violations in {what}: {found:#}"
    );
    Ok(())
}
