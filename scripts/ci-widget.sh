#!/usr/bin/env bash
# CI for the widget on a fresh Debian machine (run as root): installs what is missing
# (Chromium and chromedriver for the browser tests, the wasm32 target, wasm-bindgen-cli
# 0.2.130, wasm-opt from npm), rebuilds widget/dist/ from source, and checks the size
# budget. The browser
# tests (`cargo test -p salam-e2e --test browser`) then run on the rebuilt assets.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromedriver ] || ! command -v chromium >/dev/null 2>&1; then
    echo "== installing chromium and chromium-driver"
    install() { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }
    install || { sleep 10; install; }
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "== adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q " 0.2.130"; then
    echo "== installing wasm-bindgen-cli 0.2.130"
    cargo install wasm-bindgen-cli --version 0.2.130
fi

# wasm-opt from the npm package binaryen (Debian's binaryen is too old: its output breaks
# in Chromium) and terser for the JS glue and the trigger module. Together they save
# about 6 KB gzip, which the size budget needs.
if [ ! -x widget/node_modules/.bin/wasm-opt ] || [ ! -x widget/node_modules/.bin/terser ]; then
    echo "== installing binaryen (wasm-opt) and terser from npm"
    npm install --prefix widget --no-save --no-audit --no-fund --no-package-lock binaryen@132 terser@5.51.2 \
        || { sleep 10; npm install --prefix widget --no-save --no-audit --no-fund --no-package-lock binaryen@132 terser@5.51.2; }
fi

echo "== building the widget"
bash scripts/build-widget.sh
echo "== widget size"
bash scripts/check-widget-size.sh
