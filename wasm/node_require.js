// node_require.js (--pre-js, inside the factory, before Emscripten's own Node set-up): on
// Node, the require() of wasm/node_esm_shim.js is the caller's (Module.gpt2Require: a
// createRequire() made by js/wasm_module.js) or, in a pthread worker (whose script,
// gpt2-mt.worker.js, is CommonJS), that script's global one.
if (typeof process == 'object' && typeof process.versions == 'object' && typeof process.versions.node == 'string') {
  require = Module['gpt2Require'] || globalThis['require'];
  if (typeof require != 'function') throw new Error('gpt2-wasm: on Node this module is started by js/wasm_module.js (Module.gpt2Require)');
  __dirname = require('path').dirname(require('url').fileURLToPath(_scriptDir)); // _scriptDir: import.meta.url
}
