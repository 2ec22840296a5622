// Renames wasm-bindgen's glue to match a WASM whose import, export and module names
// `wasm-opt --minify-imports-and-exports-and-modules` shortened (issue 19: the hashed
// import names such as `__wbg_appendChild_dbf7ad2f48413560` were ~2 KB gzip of the WASM
// and the glue, incompressible). Used by scripts/build-widget.sh:
//   node scripts/minify-glue.cjs MAP.json GLUE.js > OUT.js
// MAP.json is what wasm-opt prints: {"imports": [[module, name, new]], "exports":
// [[name, new]]}; every import is renamed in the glue's import object, the one module
// becomes the new module name, and every `wasm.NAME` export use becomes `wasm.NEW`.
// Fails (exit 1) if an import of the map is not found in the glue, so a newer
// wasm-bindgen that writes its glue differently cannot produce a widget that breaks.
'use strict';
const fs = require('fs');
const [mapFile, glueFile] = process.argv.slice(2);
const text = fs.readFileSync(mapFile, 'utf8');
const map = JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1));
let glue = fs.readFileSync(glueFile, 'utf8');
const fail = (what) => { console.error('minify-glue: ' + what); process.exit(1); };
const esc = (s) => s.replace(/[$.]/g, '\\$&');
const modules = new Set();
for (const [module, name, short] of map.imports) {
  modules.add(module);
  // The import object's key: `NAME: function` at the start of a line.
  const re = new RegExp('^(\\s*)' + esc(name) + ':', 'm');
  if (!re.test(glue)) fail('import ' + name + ' not found in the glue');
  glue = glue.replace(re, '$1' + JSON.stringify(short) + ':');
}
if (modules.size != 1) fail('expected one import module, got ' + [...modules].join(', '));
const mod = [...modules][0];
const key = JSON.stringify(mod) + ': import0';
if (!glue.includes(key)) fail('the import object of ' + mod + ' not found');
glue = glue.replace(key, '"a": import0');
for (const [name, short] of map.exports) {
  const re = new RegExp('\\bwasm\\.' + esc(name) + '\\b', 'g');
  glue = glue.replace(re, 'wasm.' + short);
}
process.stdout.write(glue);
