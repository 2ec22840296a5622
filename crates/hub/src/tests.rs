//! In-process tests of the hub's structure and of its REST rules against [`app`]
//! (no socket: `tower::ServiceExt::oneshot` on the router, over a real SQLite file).

use crate::config::Config;
use crate::http::app;
use crate::{Hub, auth};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use salam_store::{AgentRole, NewAgent};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tower::ServiceExt;

/// The top-level modules each module of `src/` refers to (`crate::x`), from the code,
/// not the comments.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    fn visit(dir: &Path, top: Option<&str>, graph: &mut BTreeMap<String, BTreeSet<String>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("src is readable")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        entries.sort();
        for path in entries {
            let stem = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default()
                .to_owned();
            if path.is_dir() {
                visit(&path, Some(top.unwrap_or(&stem)), graph);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let module = match top {
                Some(top) => top.to_owned(),
                None if ["lib", "main", "tests"].contains(&stem.as_str()) => continue,
                None => stem,
            };
            let text = std::fs::read_to_string(&path).expect("source is readable");
            let code: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let uses = graph.entry(module.clone()).or_default();
            let mut rest = code.as_str();
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    for item in group[..end].split(',') {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() && name != module {
                            uses.insert(name);
                        }
                    }
                    continue;
                }
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // `crate::Hub` and other items of lib.rs are not modules.
                if name.chars().next().is_some_and(|c| c.is_lowercase()) && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    let mut graph = BTreeMap::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
        &mut graph,
    );
    graph
}

/// Regression (control plane): config, routing, service, state and ws imported each
/// other, and so did admin, api and http; a newcomer could not tell what depends on
/// what. Dependencies between the hub's modules now point one way.
#[test]
fn the_modules_of_the_hub_form_no_import_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 15, "the modules were found: {graph:?}");
    // Depth-first search with the path kept, so a failure names the cycle.
    fn dfs(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = dfs(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = dfs(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
    // The pure cores stay at the bottom.
    for low in ["config", "fanout", "auth", "error"] {
        let uses = graph.get(low).cloned().unwrap_or_default();
        assert!(
            uses.iter()
                .all(|used| ["metrics", "config"].contains(&used.as_str())
                    || (low == "error" && used == "conversation")),
            "{low} uses {uses:?}"
        );
    }
}

/// A hub over a real SQLite file in a temporary directory, not listening anywhere.
async fn hub() -> (tempfile::TempDir, Hub) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = Config {
        data: dir.path().to_path_buf(),
        ..Config::default()
    };
    let hub = Hub::open(config).await.expect("the hub opens");
    (dir, hub)
}

/// Signs `email` in and returns its bearer token.
async fn token_of(hub: &Hub, email: &str, password: &str) -> String {
    let router = app(hub.state.clone());
    let response = router
        .oneshot(
            Request::post("/api/login")
                .header("content-type", "application/json")
                .body(Body::from(
                    serde_json::json!({"email": email, "password": password}).to_string(),
                ))
                .expect("a request"),
        )
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    body["token"].as_str().expect("a token").to_owned()
}

async fn status(hub: &Hub, request: Request<Body>) -> StatusCode {
    app(hub.state.clone())
        .oneshot(request)
        .await
        .expect("an answer")
        .status()
}

/// The extractors: no session is 401, an agent on an admin route is 403, a
/// cookie-authenticated write without the CSRF header is 403 (with it, it passes), and
/// a bearer token needs no CSRF header.
#[tokio::test]
async fn extractors_check_identity_role_and_csrf() {
    let (_dir, hub) = hub().await;
    let (admin_email, admin_password) = hub.first_start.admin.clone().expect("an admin");
    let site_id = hub.first_start.site.clone().expect("the demo site").id;
    let admin = token_of(&hub, &admin_email, &admin_password).await;
    hub.state
        .store
        .create_agent(NewAgent {
            email: "sara@shop.test".into(),
            name: "Sara".into(),
            role: AgentRole::Agent,
            password_hash: auth::hash_password("correct horse battery").expect("a hash"),
            all_sites: true,
            site_ids: Vec::new(),
            capacity: None,
            departments: Vec::new(),
        })
        .await
        .expect("an agent");
    let agent = token_of(&hub, "sara@shop.test", "correct horse battery").await;
    let get = |path: &str, token: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(Body::empty()).expect("a request")
    };
    assert_eq!(
        status(&hub, get("/api/me", None)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&hub, get("/api/me", Some("junk"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&hub, get("/api/me", Some(&agent))).await,
        StatusCode::OK
    );
    for admin_route in ["/api/admin/agents", "/api/alerts"] {
        assert_eq!(
            status(&hub, get(admin_route, Some(&agent))).await,
            StatusCode::FORBIDDEN,
            "{admin_route}"
        );
        assert_eq!(
            status(&hub, get(admin_route, Some(&admin))).await,
            StatusCode::OK,
            "{admin_route}"
        );
    }
    let add_department = |cookie: bool, csrf: bool| {
        let mut request =
            Request::post("/api/departments").header("content-type", "application/json");
        request = if cookie {
            request.header("cookie", format!("salam_session={admin}"))
        } else {
            request.header("authorization", format!("Bearer {admin}"))
        };
        if csrf {
            request = request.header("x-salam-csrf", "1");
        }
        request
            .body(Body::from(
                serde_json::json!({"site_id": site_id, "name": "billing"}).to_string(),
            ))
            .expect("a request")
    };
    assert_eq!(
        status(&hub, add_department(true, false)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&hub, add_department(true, true)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        status(&hub, add_department(false, false)).await,
        StatusCode::CREATED
    );
    // Logging out needs the header too (it changes state).
    let logout = Request::post("/api/logout")
        .header("cookie", format!("salam_session={agent}"))
        .body(Body::empty())
        .expect("a request");
    assert_eq!(status(&hub, logout).await, StatusCode::FORBIDDEN);
}

/// Regression (control plane): `POST /api/admin/agents` without `site_ids` granted every
/// site. Sites are now named, or "all sites" is asked for.
#[tokio::test]
async fn new_agents_get_no_site_by_accident() {
    let (_dir, hub) = hub().await;
    let (admin_email, admin_password) = hub.first_start.admin.clone().expect("an admin");
    let admin = token_of(&hub, &admin_email, &admin_password).await;
    let add = |body: serde_json::Value| {
        Request::post("/api/admin/agents")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {admin}"))
            .body(Body::from(body.to_string()))
            .expect("a request")
    };
    let without = serde_json::json!({"email": "a@shop.test", "name": "A"});
    assert_eq!(status(&hub, add(without)).await, StatusCode::BAD_REQUEST);
    let unknown = serde_json::json!({"email": "b@shop.test", "name": "B", "site_ids": ["s_nope"]});
    assert_eq!(status(&hub, add(unknown)).await, StatusCode::BAD_REQUEST);
    let everywhere = serde_json::json!({"email": "c@shop.test", "name": "C", "all_sites": true});
    assert_eq!(status(&hub, add(everywhere)).await, StatusCode::CREATED);
    let created = hub
        .state
        .store
        .agent_by_email("c@shop.test")
        .await
        .expect("readable")
        .expect("created")
        .0;
    assert!(created.all_sites && created.site_ids.is_empty());
}
