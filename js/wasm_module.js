// wasm_module.js - instantiates the WebAssembly module (built by `npm run build`) once per call.
// Two builds ship in dist/: gpt2.mjs + .wasm (single thread, runs everywhere) and gpt2-mt.mjs +
// .wasm + .worker.js (Emscripten pthreads: needs SharedArrayBuffer, i.e. Node or a
// cross-origin-isolated page). createModule picks one (see chooseThreads) and records the
// choice on the module object: mod.gpt2Build ('wasm-simd' | 'wasm-simd-threads'),
// mod.gpt2Threads (threads the caller should give the pool) and, when the threaded build was
// wanted but could not start, mod.gpt2ThreadsFallback (why).
//
// Every file is named literally (`new URL('../dist/gpt2.mjs', import.meta.url)`, ...), so that
// bundlers (Vite, webpack) copy them as they are; the Emscripten code (gpt2.mjs) is imported
// from that URL, and it fetches nothing by itself: the .wasm comes through instantiateWasm
// (Node: read from disk), and the threaded build's pool workers (module workers in browsers)
// start from the worker script's URL (locateFile) and import the module's URL
// (mainScriptUrlOrBlob). Two ways to load the files from elsewhere: `assetsUrl` (browsers and Node: a folder holding a copy of the package's dist/,
// e.g. on a CDN) and the GPT2_WASM_DIST environment variable (Node: a developer's build folder).

import { Gpt2Error, httpStatus } from './errors.js';
import { importNode, isNode } from './platform.js';
import { assetsFolder } from './sources.js';

/** Cores of this machine (1 when unknown). */
async function cores() {
  if (isNode) {
    const os = await importNode('os');
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

/**
 * The files of one build: { glue, wasm, worker (threaded only) } as URLs. Default: this
 * package's dist/, each named literally, so that bundlers copy the files as they are (the
 * Emscripten code is then imported from its copy, not bundled: its pthread worker script
 * needs a module it can import by URL); else the folder `dir`.
 */
function buildFiles(threaded, dir) {
  if (dir) {
    const name = threaded ? 'gpt2-mt' : 'gpt2';
    return {
      glue: new URL(`${name}.mjs`, dir), wasm: new URL(`${name}.wasm`, dir),
      worker: threaded ? new URL(`${name}.worker.js`, dir) : undefined,
    };
  }
  return threaded
    ? {
        glue: new URL('../dist/gpt2-mt.mjs', import.meta.url),
        wasm: new URL('../dist/gpt2-mt.wasm', import.meta.url),
        worker: new URL('../dist/gpt2-mt.worker.js', import.meta.url),
      }
    : { glue: new URL('../dist/gpt2.mjs', import.meta.url), wasm: new URL('../dist/gpt2.wasm', import.meta.url) };
}

/** Why the factory could not be imported, as the error a user can act on. */
async function missingBuild(where, e) {
  // A browser's failed import() does not say why; ask the server, as for the worker script.
  let status = '';
  if (!isNode && /^https?:/.test(where)) {
    try {
      const r = await fetch(where, { method: 'HEAD', credentials: 'same-origin' });
      if (!r.ok) status = `${httpStatus(r)}; `;
    } catch { /* unreachable: the import's own message says enough */ }
  }
  let hint;
  if (isNode && process.env.GPT2_WASM_DIST) hint = `GPT2_WASM_DIST=${process.env.GPT2_WASM_DIST}: build into it with \`GPT2_WASM_DIST=${process.env.GPT2_WASM_DIST} npm run build\``;
  else if (/\/node_modules\//.test(where)) hint = 'this copy of gpt2-wasm has no dist/: reinstall the package';
  else if (where.startsWith('file:')) hint = 'run `npm run build` first';
  else hint = 'is it served there? Set the assetsUrl option to the folder holding gpt2-wasm\'s dist/';
  return new Gpt2Error(`cannot load ${where} (${status}${hint}): ${e.message}`, 'io');
}

/**
 * instantiateWasm for the factory: compiles `url` (streaming in browsers; read from disk in
 * Node) and hands the instance over; a failure rejects through `fail`.
 */
function instantiateFrom(url, fail) {
  return (imports, receiveInstance) => {
    compile(url, imports).then(
      ({ instance, module }) => receiveInstance(instance, module),
      (e) => fail(e),
    );
    return {}; // the exports arrive through receiveInstance
  };
}

async function compile(url, imports) {
  if (url.protocol === 'file:') {
    if (!isNode) throw new Gpt2Error(`cannot read ${url.href} here (a file: URL outside Node)`, 'io');
    const { readFile } = await importNode('fs/promises');
    let bytes;
    try {
      bytes = await readFile(url);
    } catch (e) {
      throw new Gpt2Error(`cannot read ${url.href}: ${e.code || e.message}`, 'io');
    }
    return WebAssembly.instantiate(bytes, imports);
  }
  let response;
  try {
    response = await fetch(url.href, { credentials: 'same-origin' });
  } catch (e) {
    throw new Gpt2Error(`cannot download ${url.href}: ${e.message}`, 'io');
  }
  if (!response.ok) {
    throw new Gpt2Error(`cannot download ${url.href}: ${httpStatus(response)} (set the assetsUrl option to the folder holding gpt2-wasm's dist/)`, 'io');
  }
  const type = response.headers.get('content-type') || '';
  if (typeof WebAssembly.instantiateStreaming === 'function' && type.split(';')[0].trim() === 'application/wasm') {
    return WebAssembly.instantiateStreaming(response, imports);
  }
  return WebAssembly.instantiate(await response.arrayBuffer(), imports); // a server without the wasm MIME type
}

/**
 * Creates a new instance of the WebAssembly module (each model gets its own memory).
 * @param {{ wasmUrl?: string | URL, assetsUrl?: string | URL, threads?: number | 'auto' }} [options]
 *   threads: default 1 (callers that run forward passes pass the user's choice; see
 *   chooseThreads). wasmUrl names the single-thread build's .wasm (relative to its
 *   gpt2.mjs) and implies that build. assetsUrl: a folder holding a copy of the package's
 *   files; its dist/ is used instead of this package's.
 * @returns {Promise<any>} the Emscripten module object
 */
export async function createModule(options = {}) {
  // GPT2_WASM_DIST (Node only) points at another build's output folder, e.g. for a
  // developer build in a separate directory.
  let dir;
  if (options.assetsUrl !== undefined) dir = new URL('dist/', assetsFolder(options.assetsUrl));
  else if (isNode && process.env.GPT2_WASM_DIST) dir = (await importNode('url')).pathToFileURL(process.env.GPT2_WASM_DIST.replace(/\/?$/, '/'));
  const wanted = options.wasmUrl ? 1 : await chooseThreads(options.threads ?? 1);
  if (wanted > 1) {
    try {
      return await start(buildFiles(true, dir), wanted);
    } catch (e) {
      // No threaded build here (e.g. a copy of dist/ without it), or its workers could not
      // start (e.g. a bundler that does not handle them): the single-thread one.
      const mod = await start(buildFiles(false, dir), 1, options.wasmUrl);
      mod.gpt2ThreadsFallback = `the threaded build did not start (${e.message}); running on 1 thread`;
      return mod;
    }
  }
  return start(buildFiles(false, dir), 1, options.wasmUrl);
}

/**
 * A URL the pool's (module) workers can start from. A worker must be same-origin with the
 * page: a data: URL (a bundler inlined the small script) becomes a blob: URL of the same
 * text, and a script on another origin (a CDN, which must serve it with CORS) is imported
 * by a blob: module.
 * @param {URL} url
 * @returns {Promise<string>}
 */
async function sameOriginScript(url) {
  let text;
  if (url.protocol === 'data:') text = await (await fetch(url.href)).text();
  else if (globalThis.location && url.origin !== globalThis.location.origin) text = `import ${JSON.stringify(url.href)};\n`;
  else return url.href;
  return URL.createObjectURL(new Blob([text], { type: 'text/javascript' }));
}

/** Imports a build's factory and instantiates it with `threads` threads. */
async function start(files, threads, wasmUrl) {
  let factory;
  try {
    factory = (await import(/* webpackIgnore: true */ /* @vite-ignore */ files.glue.href)).default;
  } catch (e) {
    throw await missingBuild(files.glue.href, e);
  }
  const wasm = wasmUrl ? new URL(wasmUrl, files.glue) : files.wasm;
  let fail;
  const failed = new Promise((_, reject) => { fail = reject; });
  const init = { instantiateWasm: instantiateFrom(wasm, (e) => fail(e)) };
  if (threads > 1) init.gpt2Workers = threads - 1; // the pthread pool, started with the module
  if (isNode) {
    // The Emscripten code's Node branch needs require() (wasm/node_require.js).
    init.gpt2Require = (await importNode('module')).createRequire(files.glue);
  } else if (threads > 1) {
    // The pool's workers: their script, and the module each of them imports.
    const workerScript = await sameOriginScript(files.worker);
    init.locateFile = (path) => (path.endsWith('.worker.js') ? workerScript : new URL(path, files.glue).href);
    init.mainScriptUrlOrBlob = files.glue.href;
    init.gpt2ModuleWorkers = true; // wasm/threads_pre.js
  }
  let mod;
  try {
    mod = await Promise.race([factory(init), failed]);
  } catch (e) {
    init.gpt2Terminate?.(); // the pool's workers that did start (wasm/threads_post.js)
    throw e;
  }
  // Node: idle workers must not keep the process alive (the pool only runs inside calls).
  if (threads > 1 && isNode && typeof mod.gpt2Unref === 'function') mod.gpt2Unref();
  mod.gpt2Threads = threads;
  mod.gpt2Build = threads > 1 ? 'wasm-simd-threads' : 'wasm-simd';
  return mod;
}
