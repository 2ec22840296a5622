#!/usr/bin/env bash
# Builds the chat widget from source into widget/dist/, the files the hub embeds at
# compile time and serves:
#   widget.js                         the loader (widget/loader/) with the CSS and the
#                                     hashed file names below filled in
#   salam_widget-<hash>.js            wasm-bindgen's JS glue
#   salam_widget_bg-<hash>.wasm       the WASM chat
#   triggers-<hash>.js                proactive triggers (widget/loader/triggers.js),
#                                     imported only when the site has some
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
        # Short import, export and module names (`a`, `Fa`, ...) instead of wasm-bindgen's
        # hashed ones, and the glue renamed to match (scripts/minify-glue.cjs): ~4 KB gzip.
        "$wasm_opt" --minify-imports-and-exports-and-modules --enable-bulk-memory \
            --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
            --enable-reference-types --enable-multivalue "$work/salam_widget_bg.wasm" \
            -o "$work/opt.wasm" > "$work/names.json"
        node scripts/minify-glue.cjs "$work/names.json" "$work/salam_widget.js" > "$work/glue.js"
        mv "$work/opt.wasm" "$work/salam_widget_bg.wasm"
        mv "$work/glue.js" "$work/salam_widget.js"
    else
        echo "build-widget: skipping wasm-opt $version (too old; use the npm package binaryen)"
    fi
fi

# The glue and the trigger module minified by terser (from npm, like binaryen:
# `npm install --prefix widget --no-save binaryen@132 terser@5.51.2`), else only
# without comments and indentation (their template literals are one-liners).
terser="${TERSER:-}"
for candidate in widget/node_modules/.bin/terser node_modules/.bin/terser; do
    if [ -z "$terser" ] && [ -x "$candidate" ]; then
        terser=$candidate
    fi
done
minify() {
    if [ -n "$terser" ]; then
        "$terser" "$1" --module --compress --mangle
    else
        perl -0777 -pe 's#/\*.*?\*/##gs; s#^\s*//[^\n]*\n##gm; s#^\s+##gm' "$1"
    fi
}
minify "$work/salam_widget.js" > "$work/glue.min.js"
minify widget/loader/triggers.js > "$work/triggers.min.js"

hash() { sha256sum "$1" | cut -c1-12; }
glue="salam_widget-$(hash "$work/glue.min.js").js"
wasm_name="salam_widget_bg-$(hash "$work/salam_widget_bg.wasm").wasm"
triggers="triggers-$(hash "$work/triggers.min.js").js"

mkdir -p widget/dist
rm -f widget/dist/widget.js widget/dist/salam_widget-*.js widget/dist/salam_widget_bg-*.wasm widget/dist/triggers-*.js
cp "$work/glue.min.js" "widget/dist/$glue"
cp "$work/triggers.min.js" "widget/dist/$triggers"
cp "$work/salam_widget_bg.wasm" "widget/dist/$wasm_name"

# The CSS without comments and line breaks; the loader without comments and indentation.
css=$(perl -0777 -pe 's#/\*.*?\*/##gs; s/\n+//g; s/\s*([{};,>])\s*/$1/g' widget/loader/widget.css)
CSS="$css" GLUE="$glue" WASM="$wasm_name" TRIGGERS="$triggers" perl -0777 -pe '
    s#/\*.*?\*/\n?##gs;
    s#^\s*//[^\n]*\n##gm;
    s#^\s+##gm;
    s#__CSS__#$ENV{CSS}#g;
    s#__GLUE__#$ENV{GLUE}#g;
    s#__WASM__#$ENV{WASM}#g;
    s#__TRIGGERS__#$ENV{TRIGGERS}#g;
' widget/loader/widget.js > widget/dist/widget.js

echo "build-widget: widget/dist/widget.js, widget/dist/$glue, widget/dist/$wasm_name, widget/dist/$triggers"
