// threads_pre.js (--pre-js, threaded build only): with Module.gpt2ModuleWorkers (set by
// js/wasm_module.js in browsers), the pool's workers start as module workers. Their script
// (gpt2-mt.worker.js) is valid as either kind; as a module it also runs when a dev server
// serves it rewritten as an ES module (vite dev adds an import to it), and from a blob: URL
// that imports it from another origin (a CDN: CORS is enough, where importScripts() would
// also need Cross-Origin-Resource-Policy). This Worker shadows the global one inside the
// module; Node's (global.Worker = worker_threads.Worker, set by Emscripten) is used as is.
//
// A worker whose script cannot load fails soon after it is created, which can be before
// Emscripten listens for its errors (it sets onerror once the module is compiled, later on a
// busy machine): the failure is recorded from the start (worker.gpt2StartError) and
// threads_post.js acts on it when Emscripten takes the worker up, so it is never missed.
var Worker = function (url, options) {
  var BaseWorker = globalThis['Worker'];
  if (Module['gpt2ModuleWorkers']) options = Object.assign({}, options, { 'type': 'module' });
  var worker = new BaseWorker(url, options);
  if (typeof worker.addEventListener === 'function') {
    worker.addEventListener('error', function (e) {
      if (!worker.loaded && !worker.gpt2StartError) worker.gpt2StartError = e;
    });
  }
  return worker;
};
