// wasm_module.js - instantiates the WebAssembly module (built by `npm run build`) once per call.
// Two builds ship in dist/: gpt2.mjs + .wasm (single thread, runs everywhere) and gpt2-mt.mjs +
// .wasm + .worker.js (Emscripten pthreads: needs SharedArrayBuffer, i.e. Node or a
// cross-origin-isolated page). createModule picks one (see chooseThreads) and records the
// choice on the module object: mod.gpt2Build ('wasm-simd' | 'wasm-simd-threads') and
// mod.gpt2Threads (threads the caller should give the pool).
// On Node the bytes are read from disk and handed to the factory (Emscripten 3.1.6's own
// loader would try fetch() on a file path); in browsers the factory fetches them.

import { Gpt2Error } from './errors.js';

const isNode = typeof process === 'object' && typeof process.versions === 'object' &&
  typeof process.versions.node === 'string';

/** Cores of this machine (1 when unknown). */
async function cores() {
  if (isNode) {
    const os = await import('node:os');
    return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  }
  return Math.max(1, (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 1);
}

/**
 * Threads to use for `threads` ('auto' | number | undefined). 'auto': every core in Node
 * and in cross-origin-isolated workers; 1 elsewhere, including a page's main thread, where a
 * thread may not block (Emscripten then busy-waits and two threads measured slower than
 * one). A number > 1 is honoured wherever SharedArrayBuffer works, else it becomes 1.
 */
async function chooseThreads(threads) {
  const shared = isNode ||
    (globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function');
  if (threads === undefined || threads === 'auto') {
    const mainThreadOfPage = !isNode && typeof window === 'object' && typeof document === 'object';
    return shared && !mainThreadOfPage ? cores() : 1;
  }
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new Gpt2Error(`threads must be 'auto' or a whole number from 1 to 256, got ${JSON.stringify(threads)}`, 'arg');
  }
  return shared ? threads : 1;
}

async function importFactory(moduleUrl) {
  return (await import(moduleUrl.href)).default;
}

/**
 * Creates a new instance of the WebAssembly module (each model gets its own memory).
 * @param {{ wasmUrl?: string | URL, threads?: number | 'auto' }} [options] threads: default 1
 *   (callers that run forward passes pass the user's choice; see chooseThreads). wasmUrl
 *   names the single-thread build's .wasm and implies that build.
 * @returns {Promise<any>} the Emscripten module object
 */
export async function createModule(options = {}) {
  // GPT2_WASM_DIST (Node only) points at another build's output folder, e.g. for a
  // developer build in a separate directory.
  const distDir = isNode && process.env.GPT2_WASM_DIST
    ? (await import('node:url')).pathToFileURL(process.env.GPT2_WASM_DIST.replace(/\/?$/, '/'))
    : new URL('../dist/', import.meta.url);
  let threads = options.wasmUrl ? 1 : await chooseThreads(options.threads ?? 1);
  let factory, moduleUrl, wasmUrl;
  if (threads > 1) {
    moduleUrl = new URL('gpt2-mt.mjs', distDir);
    wasmUrl = new URL('gpt2-mt.wasm', distDir);
    try {
      factory = await importFactory(moduleUrl);
    } catch {
      threads = 1; // no threaded build here (e.g. a copy of dist/ without it): the single one
    }
  }
  if (threads === 1) {
    moduleUrl = new URL('gpt2.mjs', distDir);
    wasmUrl = options.wasmUrl ? new URL(options.wasmUrl, moduleUrl) : new URL('gpt2.wasm', distDir);
    try {
      factory = await importFactory(moduleUrl);
    } catch (e) {
      throw new Gpt2Error(`cannot load ${moduleUrl.href} (run \`npm run build\` first): ${e.message}`, 'io');
    }
  }
  const init = {};
  if (threads > 1) init.gpt2Workers = threads - 1; // the pthread pool, started with the module
  if (isNode) {
    const { readFile } = await import('node:fs/promises');
    init.wasmBinary = await readFile(wasmUrl);
  } else {
    init.locateFile = (path) => (path.endsWith('.wasm') ? wasmUrl.href : new URL(path, moduleUrl).href);
    if (threads > 1) init.mainScriptUrlOrBlob = moduleUrl.href; // what the workers import
  }
  const mod = await factory(init);
  // Node: idle workers must not keep the process alive (the pool only runs inside calls).
  if (threads > 1 && isNode && typeof mod.gpt2Unref === 'function') mod.gpt2Unref();
  mod.gpt2Threads = threads;
  mod.gpt2Build = threads > 1 ? 'wasm-simd-threads' : 'wasm-simd';
  return mod;
}
