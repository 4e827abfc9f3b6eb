// On Node >= 18 the global fetch exists, and Emscripten 3.1.6 then tries to fetch the .wasm
// by file path, which fails. When the caller supplied neither wasmBinary nor
// instantiateWasm, read the file from disk instead. Passed with --pre-js.
if (typeof process == 'object' && typeof process.versions == 'object' && typeof process.versions.node == 'string' &&
    !Module['wasmBinary'] && !Module['instantiateWasm']) {
  Module['instantiateWasm'] = function (imports, receiveInstance) {
    var f = wasmBinaryFile;
    if (f.startsWith('file:')) f = require('url').fileURLToPath(f);
    WebAssembly.instantiate(require('fs').readFileSync(f), imports).then(
      function (r) { receiveInstance(r['instance'], r['module']); },
      function (e) { err('wasm instantiate failed: ' + e); abort(e); });
    return {};
  };
}
