#!/usr/bin/env bash
# Builds the chat widget from source into widget/dist/, the files the hub embeds at
# compile time and serves:
#   widget.js                         the loader (widget/loader/) with the CSS and the
#                                     hashed file names below filled in
#   salam_widget-<hash>.js            wasm-bindgen's JS glue
#   salam_widget_bg-<hash>.wasm       the WASM chat
# The hash is the first 12 hex digits of the file's SHA-256, so the hub can serve these
# two with `Cache-Control: immutable`; widget.js itself is cached for 5 minutes.
#
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli 0.2.130
# (`rustup target add wasm32-unknown-unknown`,
#  `cargo install wasm-bindgen-cli --version 0.2.130`); scripts/ci-widget.sh installs
# both. If wasm-opt from the npm package `binaryen` is found (WASM_OPT=path, or
# widget/node_modules/.bin/wasm-opt, which `npm install --prefix widget --no-save
# binaryen@132` puts there) it shrinks the WASM by about 2 KB gzip; without it the build
# works but may exceed the size budget. Debian's binaryen (108) is never used: its output
# breaks in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

want_bindgen="0.2.130"
if ! wasm-bindgen --version 2>/dev/null | grep -q " $want_bindgen"; then
    echo "build-widget: wasm-bindgen $want_bindgen is required:" >&2
    echo "  cargo install wasm-bindgen-cli --version $want_bindgen" >&2
    exit 1
fi

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --profile wasm --target wasm32-unknown-unknown -p salam-widget
wasm="$target_dir/wasm32-unknown-unknown/wasm/salam_widget.wasm"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$work" "$wasm" 2> >(grep -v "target_features" >&2 || true)

wasm_opt="${WASM_OPT:-}"
for candidate in widget/node_modules/.bin/wasm-opt node_modules/.bin/wasm-opt; do
    if [ -z "$wasm_opt" ] && [ -x "$candidate" ]; then
        wasm_opt=$candidate
    fi
done
if [ -n "$wasm_opt" ]; then
    version=$("$wasm_opt" --version | grep -oE '[0-9]+' | head -n1 || echo 0)
    if [ "$version" -gt 108 ]; then
        echo "build-widget: wasm-opt $version -Oz"
        "$wasm_opt" -Oz --flatten --rereloop -Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int \
            --enable-sign-ext --enable-mutable-globals --enable-reference-types \
            --enable-multivalue "$work/salam_widget_bg.wasm" -o "$work/opt.wasm"
        mv "$work/opt.wasm" "$work/salam_widget_bg.wasm"
    else
        echo "build-widget: skipping wasm-opt $version (too old; use the npm package binaryen)"
    fi
fi

hash() { sha256sum "$1" | cut -c1-12; }
glue="salam_widget-$(hash "$work/salam_widget.js").js"  # hash of the unminified glue
wasm_name="salam_widget_bg-$(hash "$work/salam_widget_bg.wasm").wasm"

mkdir -p widget/dist
rm -f widget/dist/widget.js widget/dist/salam_widget-*.js widget/dist/salam_widget_bg-*.wasm
# The glue without comments and indentation (its template literals are one-liners).
perl -0777 -pe 's#/\*.*?\*/##gs; s#^\s*//[^\n]*\n##gm; s#^\s+##gm' "$work/salam_widget.js" > "widget/dist/$glue"
cp "$work/salam_widget_bg.wasm" "widget/dist/$wasm_name"

# The CSS without comments and line breaks; the loader without comments and indentation.
css=$(perl -0777 -pe 's#/\*.*?\*/##gs; s/\n+//g; s/\s*([{};,>])\s*/$1/g' widget/loader/widget.css)
CSS="$css" GLUE="$glue" WASM="$wasm_name" perl -0777 -pe '
    s#/\*.*?\*/\n?##gs;
    s#^\s*//[^\n]*\n##gm;
    s#^\s+##gm;
    s#__CSS__#$ENV{CSS}#g;
    s#__GLUE__#$ENV{GLUE}#g;
    s#__WASM__#$ENV{WASM}#g;
' widget/loader/widget.js > widget/dist/widget.js

echo "build-widget: widget/dist/widget.js, widget/dist/$glue, widget/dist/$wasm_name"
