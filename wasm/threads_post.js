// threads_post.js (--post-js, threaded build only): lets the JS API manage the pthread
// workers. In Node a Worker keeps the process alive until it ends, and Emscripten 3.1.6 never
// unrefs its pool: gpt2Unref() lets the process exit while the workers idle (the pool's
// threads only run inside calls into the module). gpt2Terminate() ends every worker
// (model.dispose()).
Module['gpt2Unref'] = function () {
  PThread.unusedWorkers.concat(PThread.runningWorkers).forEach(function (w) { if (w.unref) w.unref(); });
};
Module['gpt2Terminate'] = function () { PThread.terminateAllThreads(); };
