//! Files embedded at build time: the widget's built assets and the default rule pack.

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Whether a file name carries a content hash (`name-0123abcd.ext`): such files never
/// change, so browsers may cache them for a year.
pub fn is_hashed(file_name: &str) -> bool {
    let stem = file_name.split('.').next().unwrap_or("");
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        (8..=16).contains(&hash.len())
            && hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

fn mime(file_name: &str) -> &'static str {
    match file_name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("png") => "image/png",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Serves one embedded widget file with its MIME type, CORS and cache headers.
pub fn widget_file(file_name: &str) -> Response {
    let Some((_, bytes)) = WIDGET_FILES.iter().find(|(name, _)| *name == file_name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let cache = if is_hashed(file_name) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    (
        [
            (header::CONTENT_TYPE, mime(file_name)),
            (header::CACHE_CONTROL, cache),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *bytes,
    )
        .into_response()
}

/// The console's Content-Security-Policy: nothing inline, nothing from elsewhere.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self' data:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

fn console_file(file_name: &str) -> Response {
    let Some((_, bytes)) = CONSOLE_FILES.iter().find(|(name, _)| *name == file_name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, mime(file_name)),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        *bytes,
    )
        .into_response()
}

/// `GET /console`.
pub async fn console_index() -> Response {
    console_file("index.html")
}

/// `GET /console/{file}`.
pub async fn console_asset(Path(file_name): Path<String>) -> Response {
    console_file(&file_name)
}

/// `GET /widget.js`: the loader.
pub async fn loader() -> Response {
    widget_file("widget.js")
}

/// `GET /widget/{file}`.
pub async fn file(Path(file_name): Path<String>) -> Response {
    widget_file(&file_name)
}

/// Whether the widget has been built into this binary.
pub fn widget_built() -> bool {
    WIDGET_FILES.iter().any(|(name, _)| *name == "widget.js")
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashed_names() {
        assert!(super::is_hashed("salam_widget-0123abcd.js"));
        assert!(super::is_hashed("salam_widget-0123abcd_bg.wasm"));
        assert!(!super::is_hashed("widget.js"));
        assert!(!super::is_hashed("salam-widget.js"));
        assert!(!super::is_hashed("x-0123ABCD.js"));
    }
}
