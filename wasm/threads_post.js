// threads_post.js (--post-js, threaded build only): lets the JS API manage the pthread
// workers. In Node a Worker keeps the process alive until it ends, and Emscripten 3.1.6 never
// unrefs its pool: gpt2Unref() lets the process exit while the workers idle (the pool's
// threads only run inside calls into the module). gpt2Terminate() ends every worker
// (model.dispose()).
Module['gpt2Unref'] = function () {
  PThread.unusedWorkers.concat(PThread.runningWorkers).forEach(function (w) { if (w.unref) w.unref(); });
};
Module['gpt2Terminate'] = function () { PThread.terminateAllThreads(); };
// A pool worker that cannot start (its script missing, or not loadable after bundling) fails
// the module's start (abort() rejects the factory's promise; js/wasm_module.js then falls back
// to the single-thread build) instead of leaving it waiting forever: whether it failed before
// Emscripten took it up (recorded by threads_pre.js) or after.
function gpt2WorkerDidNotStart(e) {
  if (e && e.preventDefault) e.preventDefault();
  try {
    abort('a pthread worker did not start: ' + ((e && e.message) || 'its script could not be loaded'));
  } catch (_) {
    // abort() throws after rejecting the factory's promise
  }
}
var gpt2LoadWorker = PThread.loadWasmModuleToWorker;
PThread.loadWasmModuleToWorker = function (worker, onFinishedLoading) {
  gpt2LoadWorker(worker, onFinishedLoading);
  var onerror = worker.onerror;
  worker.onerror = function (e) {
    if (worker.loaded) return onerror(e);
    gpt2WorkerDidNotStart(e);
  };
  if (worker.gpt2StartError) gpt2WorkerDidNotStart(worker.gpt2StartError);
};
