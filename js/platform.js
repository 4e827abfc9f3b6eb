// platform.js - where the code runs, and Node's built-in modules for the few places that
// need them (reading local files, the WebAssembly binary, the core count).
//
// Node built-ins are imported at run time with a specifier that is not a string literal,
// so that bundlers (esbuild, Vite, webpack) neither try to resolve them nor pull them into
// a browser bundle; importNode() is only ever called when isNode is true.

/** Whether this is Node (not a browser, nor a Web Worker). */
export const isNode = typeof process === 'object' && typeof process.versions === 'object' &&
  typeof process.versions.node === 'string';

/**
 * A Node built-in module, e.g. importNode('fs/promises') for 'node:fs/promises'.
 * @param {string} name
 * @returns {Promise<any>}
 */
export function importNode(name) {
  const specifier = `node:${name}`;
  return import(/* webpackIgnore: true */ /* @vite-ignore */ specifier);
}
