//! Embeds the built widget (`widget/dist/`), the default rule pack (`bot-rules/`) and
//! the console (`console/`) in the binary, so `cargo run --release` on a fresh clone
//! serves all three with nothing else installed.

use std::fmt::Write;
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

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let root = Path::new(&manifest).join("../..");
    let mut out = String::new();
    embed(
        &mut out,
        "WIDGET_FILES",
        &root.join("widget/dist"),
        None,
        false,
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
    let path = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("assets.rs");
    std::fs::write(path, out).unwrap_or_else(|err| panic!("cannot write assets.rs: {err}"));
}
