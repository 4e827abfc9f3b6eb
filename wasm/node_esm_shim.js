// Emscripten 3.1.6's EXPORT_ES6 output uses require() and __dirname on Node, which do not
// exist in an ES module. They are declared here (--extern-pre-js: module scope) and set by
// wasm/node_require.js when the factory runs on Node. Nothing here imports a Node module, and
// there is no top-level await: bundlers (esbuild, Vite) take this file as it is, for browsers.
var require, __dirname;
