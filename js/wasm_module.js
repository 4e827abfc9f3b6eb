// wasm_module.js - instantiates dist/gpt2.wasm (built by `npm run build`) once per call.
// On Node the bytes are read from disk and handed to the factory (Emscripten 3.1.6's own
// loader would try fetch() on a file path); in browsers the factory fetches them.

import { Gpt2Error } from './errors.js';

const isNode = typeof process === 'object' && typeof process.versions === 'object' &&
  typeof process.versions.node === 'string';

/**
 * Creates a new instance of the WebAssembly module (each model gets its own memory).
 * @param {{ wasmUrl?: string | URL }} [options]
 * @returns {Promise<any>} the Emscripten module object
 */
export async function createModule(options = {}) {
  // GPT2_WASM_DIST (Node only) points at another build's output folder, e.g. for a
  // developer build in a separate directory.
  const distDir = isNode && process.env.GPT2_WASM_DIST
    ? (await import('node:url')).pathToFileURL(process.env.GPT2_WASM_DIST.replace(/\/?$/, '/'))
    : new URL('../dist/', import.meta.url);
  const moduleUrl = new URL('gpt2.mjs', distDir);
  const wasmUrl = options.wasmUrl ? new URL(options.wasmUrl, moduleUrl) : new URL('gpt2.wasm', distDir);
  let factory;
  try {
    factory = (await import(moduleUrl.href)).default;
  } catch (e) {
    throw new Gpt2Error(`cannot load ${moduleUrl.href} (run \`npm run build\` first): ${e.message}`, 'io');
  }
  const init = {};
  if (isNode) {
    const { readFile } = await import('node:fs/promises');
    init.wasmBinary = await readFile(wasmUrl);
  } else {
    init.locateFile = (path) => (path.endsWith('.wasm') ? wasmUrl.href : new URL(path, moduleUrl).href);
  }
  return factory(init);
}
