//! Files embedded at build time: the widget's built assets, the console and the default
//! rule pack.
//!
//! The widget is served precompressed (issue 14): `build.rs` compresses each of its
//! files with brotli (quality 11) and gzip (level 9) into the binary, and a request
//! gets the encoding its `Accept-Encoding` prefers, with `Vary: Accept-Encoding` and an
//! ETag of that encoding's bytes. The console and the REST API are compressed on the fly
//! instead, by a layer in [`crate::http`].

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One encoding of an embedded file, with its strong ETag.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: &'static [u8],
    pub etag: &'static str,
}

/// A widget file as built, and its brotli and gzip encodings made at build time (absent
/// when one would not be smaller).
#[derive(Debug)]
pub struct StaticFile {
    pub name: &'static str,
    pub identity: Encoded,
    pub brotli: Option<Encoded>,
    pub gzip: Option<Encoded>,
}

/// A content coding the hub can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

/// The coding to answer with, given the request's `Accept-Encoding` and which encodings
/// exist: the acceptable one (q > 0, named or through `*`) with the highest q, brotli
/// before gzip when equal; identity when neither is acceptable or the header is absent.
/// Identity is sent even if the client refuses it (RFC 9110 §12.5.3 allows that rather
/// than a 406).
pub fn negotiate(headers: &HeaderMap, brotli: bool, gzip: bool) -> Coding {
    let (mut q_brotli, mut q_gzip, mut q_any) = (None, None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let mut q = Some(1000);
            for parameter in parts {
                if let Some((name, value)) = parameter.split_once('=')
                    && name.trim().eq_ignore_ascii_case("q")
                {
                    q = quality(value.trim());
                }
            }
            // A malformed q-value: the item is ignored.
            let Some(q) = q else { continue };
            if coding.eq_ignore_ascii_case("br") {
                q_brotli = Some(q);
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                q_gzip = Some(q);
            } else if coding == "*" {
                q_any = Some(q);
            }
        }
    }
    let q_brotli = if brotli {
        q_brotli.or(q_any).unwrap_or(0)
    } else {
        0
    };
    let q_gzip = if gzip {
        q_gzip.or(q_any).unwrap_or(0)
    } else {
        0
    };
    if q_brotli > 0 && q_brotli >= q_gzip {
        Coding::Brotli
    } else if q_gzip > 0 {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// A q-value in thousandths (`0`, `0.5`, `1.000`), or `None` when malformed.
fn quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(fraction),
        "1" if fraction == 0 => Some(1000),
        _ => None,
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 §13.1.2 asks).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

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

/// Serves one embedded widget file with its MIME type, CORS and cache headers, in the
/// encoding the request prefers (`Content-Encoding`, `Vary`, the encoding's ETag; 304
/// when `If-None-Match` names it).
pub fn widget_file(file_name: &str, request: &HeaderMap) -> Response {
    let Some(file) = WIDGET_FILES.iter().find(|file| file.name == file_name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let coding = negotiate(request, file.brotli.is_some(), file.gzip.is_some());
    let (encoded, content_encoding) = match (coding, &file.brotli, &file.gzip) {
        (Coding::Brotli, Some(brotli), _) => (brotli, Some("br")),
        (Coding::Gzip, _, Some(gzip)) => (gzip, Some("gzip")),
        _ => (&file.identity, None),
    };
    let cache = if is_hashed(file_name) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    let headers = [
        (header::CACHE_CONTROL, cache),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::VARY, "Accept-Encoding"),
        (header::ETAG, encoded.etag),
    ];
    if not_modified(request, encoded.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mut response = (
        headers,
        [
            (header::CONTENT_TYPE, mime(file_name)),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        encoded.bytes,
    )
        .into_response();
    if let Some(content_encoding) = content_encoding {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(content_encoding),
        );
    }
    response
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
pub async fn loader(headers: HeaderMap) -> Response {
    widget_file("widget.js", &headers)
}

/// `GET /widget/{file}`.
pub async fn file(Path(file_name): Path<String>, headers: HeaderMap) -> Response {
    widget_file(&file_name, &headers)
}

/// Whether the widget has been built into this binary.
pub fn widget_built() -> bool {
    WIDGET_FILES.iter().any(|file| file.name == "widget.js")
}

#[cfg(test)]
mod tests {
    use super::{Coding, negotiate};
    use axum::http::{HeaderMap, HeaderValue, header};

    /// The coding chosen for one `Accept-Encoding` value (absent when `None`), with
    /// both encodings available.
    fn check(accept: Option<&str>, expect: Coding) {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(accept).expect("header value"),
            );
        }
        assert_eq!(negotiate(&headers, true, true), expect, "{accept:?}");
    }

    #[test]
    fn accept_encoding() {
        check(None, Coding::Identity);
        check(Some(""), Coding::Identity);
        check(Some("identity"), Coding::Identity);
        check(Some("gzip, deflate"), Coding::Gzip);
        check(Some("gzip, deflate, br, zstd"), Coding::Brotli);
        check(Some("br, gzip"), Coding::Brotli);
        check(Some("BR;Q=1.0, GZIP"), Coding::Brotli);
        check(Some("br;q=0, gzip"), Coding::Gzip);
        check(Some("br;q=0, gzip;q=0"), Coding::Identity);
        check(Some("gzip;q=1, br;q=0.5"), Coding::Gzip);
        check(Some("gzip;q=0.5, br;q=0.5"), Coding::Brotli);
        check(Some("*"), Coding::Brotli);
        check(Some("*;q=0.3, br;q=0"), Coding::Gzip);
        check(Some("x-gzip"), Coding::Gzip);
        check(Some("br;q=2, gzip;q=0.001"), Coding::Gzip);
        check(Some("br;q=0.0000, gzip;q=1.5"), Coding::Identity);
        check(Some("deflate, compress"), Coding::Identity);
    }

    #[test]
    fn only_encodings_that_exist() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        assert_eq!(negotiate(&headers, false, true), Coding::Gzip);
        assert_eq!(negotiate(&headers, false, false), Coding::Identity);
    }

    #[test]
    fn hashed_names() {
        assert!(super::is_hashed("salam_widget-0123abcd.js"));
        assert!(super::is_hashed("salam_widget-0123abcd_bg.wasm"));
        assert!(!super::is_hashed("widget.js"));
        assert!(!super::is_hashed("salam-widget.js"));
        assert!(!super::is_hashed("x-0123ABCD.js"));
    }
}
