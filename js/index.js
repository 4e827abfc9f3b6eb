// gpt2-wasm: GPT-2 text generation in WebAssembly, for Node and browsers.
//
//   import { load } from 'gpt2-wasm';
//   const model = await load();                      // the embedded model, or a URL / folder
//   for await (const { text } of model.generate('Once upon a time', { maxTokens: 40 }))
//     process.stdout.write(text);
//
// Types: index.d.ts. Everything here is an ES module with no dependencies. Bundlers targeting
// browsers get js/index.browser.js instead (the `browser` export condition: no download()).
export { load } from './load.js';
export { Gpt2Model } from './model.js';
export { Gpt2Error } from './errors.js';
export { defaultModelUrl } from './sources.js';
export { download } from './node/download.js'; // Node only: fetches a checkpoint into a folder
