// gpt2-wasm in a page built by a bundler with no configuration: esbuild (`--bundle
// --format=esm --platform=browser`), `vite build` and `vite dev` (both from npm, pinned
// devDependencies). The page is a temporary project whose node_modules/gpt2-wasm is a copy
// of this checkout's package files (as `npm install` would leave them); it imports
// 'gpt2-wasm/browser' (loadInWorker) and 'gpt2-wasm' (load, under the `browser` condition).
// The bundles are served with COOP/COEP (scripts/serve.mjs) and run in headless Chromium;
// the greedy and the seeded text of the embedded model must equal Node's load() (computed
// here, independently of any bundle).
//
// esbuild does not copy the files named with `new URL(..., import.meta.url)`: its bundle
// must fail with errors that say so, and run once `assetsUrl` names where the package's
// files are (here another origin, like a CDN). Threads run in every case (the page is
// cross-origin isolated); when the pool's worker cannot start, one thread runs and
// model.info.threadsFallback says why.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './launch.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROMPT = 'It is a truth universally acknowledged';
const RUNS = [
  { maxTokens: 16, temperature: 0 },                    // greedy
  { maxTokens: 16, temperature: 0.9, topK: 40, seed: 7 }, // seeded sampling
];

// The page: runs RUNS through loadInWorker() and load(); returns the texts and model.info.
const PAGE_JS = `
import { loadInWorker, isCrossOriginIsolated } from 'gpt2-wasm/browser';
import { load } from 'gpt2-wasm';

async function texts(model, runs) {
  const out = [];
  for (const options of runs) {
    let text = '';
    for await (const piece of model.generate(${JSON.stringify(PROMPT)}, options)) text += piece.text;
    out.push(text);
  }
  return out;
}

window.gpt2Page = {
  isolated: () => isCrossOriginIsolated(),
  async worker(options, runs) {
    const model = await loadInWorker(undefined, options);
    try {
      return { texts: await texts(model, runs), info: { ...model.info } };
    } finally {
      await model.dispose();
    }
  },
  async main(options, runs) {
    const model = await load(undefined, options);
    try {
      return { texts: await texts(model, runs), info: { ...model.info } };
    } finally {
      model.dispose();
    }
  },
};
`;
const PAGE_HTML = '<!doctype html><meta charset="utf-8"><title>gpt2-wasm bundled</title>\n<script type="module" src="./main.js"></script>\n';

const built = existsSync(join(ROOT, 'dist', 'gpt2.wasm')) && existsSync(join(ROOT, 'dist', 'gpt2-mt.worker.js'));
const skip = !built ? 'dist/ is not built (npm run build)' : false;

let dir;           // the temporary project
let expected;      // Node's texts for RUNS
let browser;
let serve;         // scripts/serve.mjs startServer
const servers = [];

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'gpt2-bundlers-'));
  const pkg = join(dir, 'node_modules', 'gpt2-wasm');
  mkdirSync(pkg, { recursive: true });
  for (const f of ['package.json', 'js', 'dist', 'models']) cpSync(join(ROOT, f), join(pkg, f), { recursive: true });
  writeFileSync(join(dir, 'main.js'), PAGE_JS);
  writeFileSync(join(dir, 'index.html'), PAGE_HTML);

  const { load } = await import('../../js/index.js');
  const model = await load();
  expected = [];
  for (const options of RUNS) {
    let text = '';
    for await (const piece of model.generate(PROMPT, options)) text += piece.text;
    expected.push(text);
  }
  model.dispose();
  ({ startServer: serve } = await import('../../scripts/serve.mjs'));
  browser = await launchBrowser({ timeout: 60_000 });
});

after(async () => {
  if (browser) await browser.close();
  for (const s of servers) await s.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Serves a folder with COOP/COEP (and, for `cors`, as a CDN would: CORS on every file);
 * `missing` paths answer 404.
 */
async function serveFolder(root, { cors = false, missing = [] } = {}) {
  const s = await serve({
    root, port: 0, host: '127.0.0.1',
    onRequest: (req, res) => {
      if (cors) res.setHeader('Access-Control-Allow-Origin', '*');
      if (!missing.includes(new URL(req.url, 'http://x').pathname)) return false;
      res.statusCode = 404;
      res.end('not found\n');
      return true;
    },
  });
  servers.push(s);
  return s;
}

/** Opens url and runs the page's function `fn` ('worker' | 'main') with options. */
async function run(url, fn, options = {}) {
  const { page } = browser;
  if (page.url() !== url) {
    await page.goto(url);
    await page.waitForFunction(() => window.gpt2Page !== undefined);
  }
  return page.evaluate(([f, o, runs]) => window.gpt2Page[f](o, runs), [fn, options, RUNS]);
}

/** The error message of the page's `fn`, which must fail. */
async function runError(url, fn, options = {}) {
  const { page } = browser;
  await page.goto(url);
  await page.waitForFunction(() => window.gpt2Page !== undefined);
  return page.evaluate(([f, o, runs]) => window.gpt2Page[f](o, runs).then(
    () => 'no error',
    (e) => `${e.name} [${e.code}]: ${e.message}`,
  ), [fn, options, RUNS]);
}

function assertSameTexts(result, label) {
  for (const t of result.texts) assert.ok(t.length > 0, `${label}: no text generated`);
  assert.deepEqual(result.texts, expected, `${label}: the texts differ from Node's`);
}

test('vite build (no config): loadInWorker on threads and load on the page give Node\'s texts', { skip, timeout: 120_000 }, async () => {
  const { build } = await import('vite');
  const outDir = join(dir, 'vite-out');
  const warnings = [];
  const logger = {
    info() {}, clearScreen() {}, hasErrorLogged: () => false, hasWarned: false,
    warn: (msg) => warnings.push(msg), warnOnce: (msg) => warnings.push(msg), error: (msg) => warnings.push(msg),
  };
  // (bundlerTimings: rolldown's warning that plugins took much of the build's time depends on the
  // machine's load, not on the package)
  await build({
    root: dir, configFile: false, logLevel: 'warn', customLogger: logger,
    build: { outDir, emptyOutDir: true, rolldownOptions: { checks: { bundlerTimings: false } } },
  });
  assert.deepEqual(warnings, [], 'vite build printed warnings');
  const server = await serveFolder(outDir);
  const url = new URL('index.html', server.url).href;
  const inWorker = await run(url, 'worker');
  assertSameTexts(inWorker, 'vite build, loadInWorker');
  assert.equal(await browser.page.evaluate(() => window.gpt2Page.isolated()), true);
  assert.equal(inWorker.info.build, 'wasm-simd-threads', `threads after vite build: ${inWorker.info.threadsFallback}`);
  const onPage = await run(url, 'main');
  assertSameTexts(onPage, 'vite build, load');
  assert.equal(onPage.info.build, 'wasm-simd'); // a page's main thread may not block: 1 thread
  // The bundle took its own copies: nothing was fetched from outside the output folder.
  assert.ok(Object.keys(server.counts).some((p) => /^\/assets\/model-[\w-]+\.safetensors$/.test(p)), Object.keys(server.counts).join(' '));
});

test('vite dev (no config): loadInWorker and load give Node\'s texts', { skip, timeout: 120_000 }, async () => {
  const { createServer } = await import('vite');
  const server = await createServer({
    root: dir, configFile: false, logLevel: 'silent',
    server: {
      host: '127.0.0.1', port: 0, hmr: false,
      headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
    },
  });
  await server.listen();
  servers.push(server);
  const url = new URL('index.html', server.resolvedUrls.local[0]).href;
  const inWorker = await run(url, 'worker');
  assertSameTexts(inWorker, 'vite dev, loadInWorker');
  // (The dev server serves the pool's worker script rewritten as an ES module: it must still start.)
  assert.equal(inWorker.info.build, 'wasm-simd-threads', `threads under vite dev: ${inWorker.info.threadsFallback}`);
  assertSameTexts(await run(url, 'main'), 'vite dev, load');
});

test('esbuild (no config): the bundle builds cleanly; without assetsUrl the errors name the missing URLs and the options', { skip, timeout: 60_000 }, async () => {
  const esbuild = await import('esbuild');
  const outDir = join(dir, 'esbuild-out');
  const result = await esbuild.build({
    entryPoints: [join(dir, 'main.js')], bundle: true, format: 'esm', platform: 'browser',
    outdir: outDir, logLevel: 'silent', absWorkingDir: dir,
  });
  assert.deepEqual([...result.errors, ...result.warnings], []);
  writeFileSync(join(outDir, 'index.html'), PAGE_HTML);
  const server = await serveFolder(outDir);
  const url = new URL('index.html', server.url).href;
  // esbuild leaves new URL('./worker.js', import.meta.url) as it is: next to the bundle, 404.
  const workerError = await runError(url, 'worker');
  assert.match(workerError, /^Gpt2Error \[io\]/);
  assert.ok(workerError.includes(new URL('worker.js', server.url).href), workerError);
  assert.match(workerError, /HTTP 404/);
  assert.match(workerError, /workerUrl/);
  assert.match(workerError, /assetsUrl/);
  const mainError = await runError(url, 'main');
  assert.match(mainError, /^Gpt2Error \[io\]/);
  assert.match(mainError, /HTTP 404/);
  assert.match(mainError, /assetsUrl/);
});

test('esbuild + assetsUrl on another origin (a CDN): loadInWorker and load give Node\'s texts', { skip, timeout: 120_000 }, async () => {
  const outDir = join(dir, 'esbuild-out'); // built by the previous test
  assert.ok(existsSync(join(outDir, 'main.js')), 'the esbuild test must run first');
  const page = await serveFolder(outDir);
  const cdn = await serveFolder(join(dir, 'node_modules', 'gpt2-wasm'), { cors: true });
  // 'localhost' and '127.0.0.1' are different origins.
  const assetsUrl = cdn.url.replace('127.0.0.1', 'localhost');
  const url = new URL('index.html', page.url).href;
  const inWorker = await run(url, 'worker', { assetsUrl });
  assertSameTexts(inWorker, 'esbuild + CDN, loadInWorker');
  assert.equal(inWorker.info.source, new URL('models/', assetsUrl).href);
  // Workers cannot start from another origin's script: both gpt2-wasm's worker and the
  // pool's are same-origin blob: modules importing the CDN's scripts.
  assert.equal(inWorker.info.build, 'wasm-simd-threads', `threads from a CDN: ${inWorker.info.threadsFallback}`);
  const onPage = await run(url, 'main', { assetsUrl });
  assertSameTexts(onPage, 'esbuild + CDN, load');
  assert.ok(cdn.counts['/js/browser/worker.js'] >= 1 && cdn.counts['/dist/gpt2.wasm'] >= 1 && cdn.counts['/models/model.safetensors'] >= 1,
    JSON.stringify(cdn.counts));
});

test('a threaded build whose pool workers cannot start: the single-thread build runs, and info.threadsFallback says why', { skip, timeout: 120_000 }, async () => {
  const outDir = join(dir, 'esbuild-out'); // built by the esbuild test
  assert.ok(existsSync(join(outDir, 'main.js')), 'the esbuild test must run first');
  const page = await serveFolder(outDir);
  const assets = await serveFolder(join(dir, 'node_modules', 'gpt2-wasm'), { cors: true, missing: ['/dist/gpt2-mt.worker.js'] });
  const result = await run(new URL('index.html', page.url).href, 'worker', { assetsUrl: assets.url.replace('127.0.0.1', 'localhost') });
  assertSameTexts(result, 'pool worker missing, loadInWorker');
  assert.equal(result.info.build, 'wasm-simd');
  assert.equal(result.info.threads, 1);
  assert.match(result.info.threadsFallback, /threaded build did not start \(.*pthread worker did not start.*\); running on 1 thread/);
  assert.ok(assets.counts['/dist/gpt2-mt.worker.js'] >= 1);
});
