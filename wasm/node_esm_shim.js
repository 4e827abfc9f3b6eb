// Emscripten 3.1.6's EXPORT_ES6 output uses require() and __dirname on Node, which do not
// exist in an ES module; define them (only on Node). Passed with --extern-pre-js.
const __gpt2_is_node = typeof process == 'object' && typeof process.versions == 'object' &&
  typeof process.versions.node == 'string';
const require = __gpt2_is_node ? (await import('module')).createRequire(import.meta.url) : undefined;
const __dirname = __gpt2_is_node ? require('path').dirname(require('url').fileURLToPath(import.meta.url)) : undefined;
