// threads_pre.js (--pre-js, threaded build only): with Module.gpt2ModuleWorkers (set by
// js/wasm_module.js in browsers), the pool's workers start as module workers. Their script
// (gpt2-mt.worker.js) is valid as either kind; as a module it also runs when a dev server
// serves it rewritten as an ES module (vite dev adds an import to it), and from a blob: URL
// that imports it from another origin (a CDN: CORS is enough, where importScripts() would
// also need Cross-Origin-Resource-Policy). This Worker shadows the global one inside the
// module; Node's (global.Worker = worker_threads.Worker, set by Emscripten) is used as is.
var Worker = function (url, options) {
  var BaseWorker = globalThis['Worker'];
  if (Module['gpt2ModuleWorkers']) options = Object.assign({}, options, { 'type': 'module' });
  return new BaseWorker(url, options);
};
