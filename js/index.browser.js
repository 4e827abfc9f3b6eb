// gpt2-wasm for browsers: what `import ... from 'gpt2-wasm'` gives under the `browser` export
// condition (bundlers targeting browsers: esbuild --platform=browser, Vite, webpack). The same
// API as js/index.js, without the Node-only download() (it writes files): here it rejects.
// To keep the page responsive, prefer loadInWorker() from 'gpt2-wasm/browser'.
//
// Types: index.d.ts.
import { Gpt2Error } from './errors.js';

export { load } from './load.js';
export { Gpt2Model } from './model.js';
export { Gpt2Error } from './errors.js';
export { defaultModelUrl } from './sources.js';

/**
 * Node only (it writes files): in a browser it rejects with Gpt2Error 'unsupported'.
 * @returns {Promise<never>}
 */
export async function download() {
  throw new Gpt2Error('download() needs Node (it writes files to a folder); in a browser, load() the model from a URL', 'unsupported');
}
