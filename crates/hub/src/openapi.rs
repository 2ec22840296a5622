//! The REST API v1's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and types (never written by hand), and the routes that serve it:
//!
//! - `GET /api/openapi.json` (no token): the document. The errors every v1 call can
//!   answer (400, 401, 403, 404, 413, 415, 422, 429, 503, each with [`ErrorBody`]) are
//!   added to every operation here, so no handler's list can miss one; the text limit
//!   of a message is the hub's configured `limits.max_text_chars`.
//! - `GET /api/docs` (no token): a readable page of the document, self-contained (its
//!   own small script renders paths, parameters and schemas; no CDN: the hub runs
//!   offline).
//!
//! It also holds the router of [`crate::api_v1`] (the v1 routes and the console's token
//! routes), which [`crate::http`] merges.

use crate::api_v1::{ErrorBody, contacts, conversations, records, tokens};
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Salam REST API",
        version = "1",
        description = "The REST API v1 of a Salam hub, for other systems. Every call takes an API \
                       token of one site (`Authorization: Bearer salam_…`), created by the site's \
                       admins in the console; a token's scope is `read`, `write` or `admin` \
                       (each includes the ones before). Objects of another site answer 404. \
                       Errors are `{\"error\": CODE, \"message\": TEXT}`. See docs/api.md."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "conversations", description = "Conversations and their messages"),
        (name = "contacts", description = "Contacts with custom attributes"),
        (name = "offline requests", description = "Callbacks visitors asked for"),
        (name = "reports", description = "The site's figures over a period"),
        (name = "site", description = "The token's site"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("salam_…".into());
        http.description = Some("An API token of the site, from the console".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// The errors any v1 operation can answer, with why.
const COMMON_ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "Malformed: a query parameter or path id that does not parse, or a body that is not JSON",
    ),
    ("401", "No API token, or an unknown or revoked one"),
    ("403", "The token's scope does not allow this"),
    ("404", "No such object in the token's site"),
    ("413", "The body is too large"),
    ("415", "The body is not sent as application/json"),
    (
        "422",
        "The body does not fit the schema, or a field is invalid",
    ),
    (
        "429",
        "The token is over its request rate; retry after Retry-After seconds",
    ),
    ("503", "The store cannot take writes now; retry later"),
];

/// Adds [`COMMON_ERRORS`] to every operation that does not list them itself.
fn add_common_errors(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, why) in COMMON_ERRORS {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| {
                        let mut response = ResponseBuilder::new().description(*why).content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        );
                        if *status == "429" {
                            response = response.header(
                                "Retry-After",
                                utoipa::openapi::HeaderBuilder::new()
                                    .schema(
                                        utoipa::openapi::ObjectBuilder::new()
                                            .schema_type(utoipa::openapi::schema::Type::Integer),
                                    )
                                    .description(Some("Seconds to wait"))
                                    .build(),
                            );
                        }
                        RefOr::T(response.build())
                    });
            }
        }
    }
}

/// The generated document, as JSON (with the common errors).
pub fn document() -> serde_json::Value {
    let (_, openapi) = v1_routes().split_for_parts();
    finish(openapi)
}

/// Adds what the derive cannot say: the common errors, and the bounds of contact
/// attributes (key pattern, count, string length), which the handlers enforce.
fn finish(mut openapi: utoipa::openapi::OpenApi) -> serde_json::Value {
    use crate::api_v1::contacts::{ATTRIBUTE_KEY_PATTERN, MAX_ATTRIBUTE_CHARS, MAX_ATTRIBUTES};
    add_common_errors(&mut openapi);
    let mut document = serde_json::to_value(&openapi).unwrap_or_default();
    for schema in ["CreateContact", "UpdateContact"] {
        if let Some(attributes) = document
            .pointer_mut(&format!(
                "/components/schemas/{schema}/properties/attributes"
            ))
            .and_then(serde_json::Value::as_object_mut)
        {
            attributes.insert("maxProperties".into(), MAX_ATTRIBUTES.into());
            attributes.insert(
                "propertyNames".into(),
                serde_json::json!({ "pattern": ATTRIBUTE_KEY_PATTERN }),
            );
        }
    }
    // What the handlers refuse as empty (a blank text or name) the document refuses too.
    for pointer in [
        "/components/schemas/SendMessage/properties/text",
        "/components/schemas/CreateContact/properties/name",
        "/components/schemas/UpdateContact/properties/name",
    ] {
        if let Some(field) = document
            .pointer_mut(pointer)
            .and_then(serde_json::Value::as_object_mut)
        {
            field.insert("pattern".into(), crate::api_v1::VISIBLE_PATTERN.into());
        }
    }
    // The sender is a closed set of objects (the handlers deny unknown fields).
    if let Some(variants) = document
        .pointer_mut("/components/schemas/Sender/oneOf")
        .and_then(serde_json::Value::as_array_mut)
    {
        for variant in variants
            .iter_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            variant.insert("additionalProperties".into(), false.into());
        }
    }
    // In an update, `null` removes a key.
    if let Some(attributes) = document
        .pointer_mut("/components/schemas/UpdateContact/properties/attributes")
        .and_then(serde_json::Value::as_object_mut)
    {
        attributes.insert(
            "additionalProperties".into(),
            serde_json::json!({ "oneOf": [
                { "$ref": "#/components/schemas/AttributeValue" },
                { "type": "null" },
            ] }),
        );
    }
    if let Some(variants) = document
        .pointer_mut("/components/schemas/AttributeValue/oneOf")
        .and_then(serde_json::Value::as_array_mut)
    {
        for variant in variants {
            if variant["type"] == "string"
                && let Some(variant) = variant.as_object_mut()
            {
                variant.insert("maxLength".into(), MAX_ATTRIBUTE_CHARS.into());
            }
        }
    }
    document
}

fn v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(conversations::list))
        .routes(routes!(conversations::read))
        .routes(routes!(conversations::messages, conversations::send))
        .routes(routes!(conversations::close))
        .routes(routes!(contacts::search, contacts::create))
        .routes(routes!(contacts::read, contacts::update))
        .routes(routes!(contacts::changes))
        .routes(routes!(records::offline_requests))
        .routes(routes!(records::offline_request_done))
        .routes(routes!(records::reports))
        .routes(routes!(records::site))
        .routes(routes!(records::tokens))
}

/// The v1 routes, the document and its page, and the console's token routes.
pub fn router() -> Router<AppState> {
    let (v1, openapi) = v1_routes().split_for_parts();
    let document = Arc::new(finish(openapi));
    v1.route(
        "/api/openapi.json",
        get(move |state: State<AppState>| serve_document(state, document.clone())),
    )
    .route("/api/docs", get(docs_page))
    .route(
        "/api/sites/{id}/tokens",
        get(tokens::list).post(tokens::create),
    )
    .route("/api/sites/{id}/tokens/{token_id}", delete(tokens::revoke))
}

/// The document with this hub's limits filled in.
async fn serve_document(
    State(state): State<AppState>,
    document: Arc<serde_json::Value>,
) -> Response {
    let mut document = (*document).clone();
    if let Some(text) = document.pointer_mut("/components/schemas/SendMessage/properties/text")
        && let Some(text) = text.as_object_mut()
    {
        text.insert("minLength".into(), 1.into());
        text.insert(
            "maxLength".into(),
            state.config.limits.max_text_chars.into(),
        );
    }
    ([(header::CACHE_CONTROL, "no-cache")], axum::Json(document)).into_response()
}

async fn docs_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        DOCS_PAGE,
    )
        .into_response()
}

const DOCS_PAGE: &str = include_str!("openapi_docs.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_the_common_errors_and_the_bearer_scheme() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let paths = document["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/api/v1/conversations/{id}/messages"));
        assert!(paths.contains_key("/api/v1/contacts/{id}"));
        let mut operations = 0;
        for item in paths.values() {
            for (method, operation) in item.as_object().expect("path item") {
                if !["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                    continue;
                }
                operations += 1;
                for (status, _) in COMMON_ERRORS {
                    assert!(
                        operation["responses"][*status].is_object(),
                        "{method} lacks {status}"
                    );
                }
                assert!(
                    operation["security"].is_array(),
                    "{method} without security"
                );
            }
        }
        assert!(operations >= 15, "{operations} operations");
        let mut ids: Vec<&str> = paths
            .values()
            .flat_map(|item| item.as_object().expect("path item").values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        assert_eq!(ids.len(), operations, "every operation has an id");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), operations, "operation ids are unique");
    }
}
