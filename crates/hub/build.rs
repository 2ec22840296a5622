//! Embeds the built widget (`widget/dist/`), the default rule pack (`bot-rules/`) and
//! the console (`console/`) in the binary, so `cargo run --release` on a fresh clone
//! serves all three with nothing else installed.
//!
//! The widget's files are also compressed here, once per build, with brotli at its best
//! quality and gzip at its best level (issue 14): every visitor's first load is served
//! from these, so the hub never compresses them at run time. Each encoding gets its own
//! strong ETag, the SHA-256 of its bytes.

use sha2::{Digest, Sha256};
use std::fmt::Write;
use std::io::Write as _;
use std::path::Path;

fn embed(out: &mut String, name: &str, dir: &Path, extension: Option<&str>, as_text: bool) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path| {
        path.is_file() && extension.is_none_or(|ext| path.extension().is_some_and(|e| e == ext))
    });
    files.sort();
    let kind = if as_text { "&str" } else { "&[u8]" };
    let include = if as_text {
        "include_str!"
    } else {
        "include_bytes!"
    };
    let _ = writeln!(out, "pub static {name}: &[(&str, {kind})] = &[");
    for path in files {
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(
            out,
            "    ({file_name:?}, {include}({:?})),",
            path.display().to_string()
        );
    }
    let _ = writeln!(out, "];");
}

fn brotli_best(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        // Quality 11 (the best); a 4 MiB window, brotli's default: larger than any of the
        // files, and no more memory than that asked of the browser's decoder.
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
        writer
            .write_all(bytes)
            .unwrap_or_else(|err| panic!("brotli: {err}"));
    }
    out
}

fn gzip_best(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .unwrap_or_else(|err| panic!("gzip: {err}"))
}

/// A strong ETag for one encoding of a file: its bytes' SHA-256 (16 hex digits) and
/// the encoding, so no cache hands a gzip body to a client that asked for brotli.
fn etag(bytes: &[u8], encoding: &str) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}-{encoding}\"")
}

/// `WIDGET_FILES`: each file of `dir` as it is, brotli and gzip, written to `out_dir`
/// and embedded from there. An encoding that would not be smaller is left out.
fn embed_compressed(out: &mut String, name: &str, dir: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.is_file());
    files.sort();
    let compressed_dir = out_dir.join("widget-compressed");
    std::fs::create_dir_all(&compressed_dir)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", compressed_dir.display()));
    let _ = writeln!(out, "pub static {name}: &[StaticFile] = &[");
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        let encoded = |suffix: &str, label: &str, compressed: Vec<u8>| -> String {
            if compressed.len() >= bytes.len() {
                return "None".to_owned();
            }
            let target = compressed_dir.join(format!("{file_name}.{suffix}"));
            std::fs::write(&target, &compressed)
                .unwrap_or_else(|err| panic!("cannot write {}: {err}", target.display()));
            format!(
                "Some(Encoded {{ bytes: include_bytes!({:?}), etag: {:?} }})",
                target.display().to_string(),
                etag(&compressed, label)
            )
        };
        let brotli = encoded("br", "br", brotli_best(&bytes));
        let gzip = encoded("gz", "gzip", gzip_best(&bytes));
        let _ = writeln!(
            out,
            "    StaticFile {{ name: {file_name:?}, identity: Encoded {{ bytes: include_bytes!({:?}), etag: {:?} }}, brotli: {brotli}, gzip: {gzip} }},",
            path.display().to_string(),
            etag(&bytes, "identity"),
        );
    }
    let _ = writeln!(out, "];");
}

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let root = Path::new(&manifest).join("../..");
    let out_dir = std::env::var("OUT_DIR").unwrap_or_default();
    let mut out = String::new();
    embed_compressed(
        &mut out,
        "WIDGET_FILES",
        &root.join("widget/dist"),
        Path::new(&out_dir),
    );
    embed(
        &mut out,
        "DEFAULT_RULES",
        &root.join("bot-rules"),
        Some("toml"),
        true,
    );
    embed(
        &mut out,
        "CONSOLE_FILES",
        &Path::new(&manifest).join("console"),
        None,
        false,
    );
    let path = Path::new(&out_dir).join("assets.rs");
    std::fs::write(path, out).unwrap_or_else(|err| panic!("cannot write assets.rs: {err}"));
}
