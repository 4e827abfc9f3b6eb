// Faults in Chromium (issue 6): a download cut mid-file, a server that lies about
// Content-Length, a corrupted cached file, an abort during load, a worker terminated
// mid-generation, and two models in one page. Each must end in a clear error or a clean
// retry, with no half-written cache entry left behind.
//
// The page is tests/browser/harness.html (it only imports js/browser/index.js), served by
// scripts/serve.mjs; the faulty downloads come from tests/js/helpers/server.mjs on another
// port (it sends CORS/CORP headers so the cross-origin-isolated page may read it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './launch.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = join(ROOT, 'tests', 'fixtures', 'tiny-f32');
const expected = JSON.parse(readFileSync(join(FIXTURE, 'expected.json'), 'utf8'));
const english = expected.cases.find((c) => c.name === 'english');
const WAIT = { timeout: 30_000 };

let server;   // the repository (the page, js/, dist/, the fixture)
let faulty;   // the fault-injecting server
let browser; // from launchBrowser
let page;

before(async () => {
  const { startServer } = await import('../../scripts/serve.mjs');
  const { serveFolder } = await import('../js/helpers/server.mjs');
  server = await startServer({ port: 0, host: '127.0.0.1', root: ROOT });
  faulty = await serveFolder(FIXTURE);
  browser = await launchBrowser({ timeout: WAIT.timeout });
  ({ page } = browser);
  await page.goto(new URL('tests/browser/harness.html', server.url).href);
  await page.waitForSelector('body[data-ready="true"]', { ...WAIT, state: 'attached' });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
  if (faulty) await faulty.close();
});

/**
 * In the page: loads url in a worker (with the cache), greedily generates 8 tokens of the
 * reference prompt, disposes. Returns { ok, tokens } or { ok: false, name, code, message }.
 */
function loadAndRun(url, { cache = true, abortAtProgress = false } = {}) {
  return page.evaluate(async ({ url, ids, cache, abortAtProgress }) => {
    const ctrl = new AbortController();
    try {
      const model = await window.gpt2.loadInWorker(url, {
        cache,
        signal: ctrl.signal,
        onProgress: (e) => { if (abortAtProgress && e.phase === 'download' && e.loaded > 0) ctrl.abort(); },
      });
      const tokens = [];
      for await (const p of model.generate(ids, { temperature: 0, ignoreEot: true, maxTokens: 8 })) {
        if (p.token !== null) tokens.push(p.token);
      }
      await model.dispose();
      return { ok: true, tokens };
    } catch (e) {
      return { ok: false, name: e.name, code: e.code, message: e.message };
    }
  }, { url, ids: english.ids, cache, abortAtProgress });
}

/** In the page: the cached entry for url (as { size } ) or null. */
function cachedEntry(url) {
  return page.evaluate(async (url) => {
    const cache = await caches.open('gpt2-wasm-models-v1');
    const r = await cache.match(url);
    return r ? { size: (await r.blob()).size } : null;
  }, url);
}

const weightsOf = (base) => new URL('model.safetensors', base).href;

test('a download cut mid-file: clear error, nothing cached, then a retry loads', async () => {
  const cut = faulty.url('cut');
  const r = await loadAndRun(cut);
  assert.equal(r.ok, false, 'the cut download fails');
  assert.match(r.message, /model\.safetensors|network|failed|ended/i);
  assert.equal(await cachedEntry(weightsOf(cut)), null, 'no half-written cache entry');
  const good = await loadAndRun(faulty.url('normal'));
  assert.equal(good.ok, true, good.message);
  assert.deepEqual(good.tokens, english.greedy.slice(0, 8));
});

test('a server announcing more bytes than it sends: clear error, nothing cached', async () => {
  const url = faulty.url('overlong');
  const r = await loadAndRun(url);
  assert.equal(r.ok, false);
  assert.match(r.message, /model\.safetensors|ended after|bytes/);
  assert.equal(await cachedEntry(weightsOf(url)), null);
});

test('a server announcing fewer bytes than the file has: reported as truncated, the bad copy evicted', async () => {
  const url = faulty.url('short');
  const r = await loadAndRun(url);
  assert.equal(r.ok, false);
  assert.match(r.message, /truncated/);
  // The short body arrived whole as announced, so it was cached; a load that fails on the
  // contents evicts it, so a fixed server copy would be fetched next time.
  assert.equal(await cachedEntry(weightsOf(url)), null, 'the bad file is not kept in the cache');
  const again = await loadAndRun(url);
  assert.equal(again.ok, false);
  assert.match(again.message, /truncated/);
});

test('a corrupted cached file is detected, evicted, and the next load downloads it again', async () => {
  const base = new URL('tests/fixtures/tiny-f32/', server.url).href;
  const first = await loadAndRun(base);
  assert.equal(first.ok, true, first.message);
  const fileSize = readFileSync(join(FIXTURE, 'model.safetensors')).byteLength;
  assert.deepEqual(await cachedEntry(weightsOf(base)), { size: fileSize }, 'stored in the cache');
  const requestsBefore = server.counts['/tests/fixtures/tiny-f32/model.safetensors'] || 0;

  // Flip one byte in the middle of the tensor data of the cached copy, keeping its headers.
  await page.evaluate(async (url) => {
    const cache = await caches.open('gpt2-wasm-models-v1');
    const r = await cache.match(url);
    const bytes = new Uint8Array(await r.arrayBuffer());
    bytes[bytes.length >> 1] ^= 0x40;
    await cache.put(url, new Response(bytes, { headers: r.headers }));
  }, weightsOf(base));

  const bad = await loadAndRun(base);
  assert.equal(bad.ok, false, 'a corrupted copy is not used');
  assert.match(bad.message, /corrupted/);
  assert.equal(await cachedEntry(weightsOf(base)), null, 'the corrupted entry is gone');

  const retry = await loadAndRun(base);
  assert.equal(retry.ok, true, retry.message);
  assert.deepEqual(retry.tokens, english.greedy.slice(0, 8));
  assert.equal(server.counts['/tests/fixtures/tiny-f32/model.safetensors'], requestsBefore + 1, 'downloaded again once');
  assert.deepEqual(await cachedEntry(weightsOf(base)), { size: fileSize }, 'cached again');
});

test('an abort during load rejects with AbortError and leaves no partial cache entry', async () => {
  const url = faulty.url('slow');
  const r = await loadAndRun(url, { abortAtProgress: true });
  assert.equal(r.ok, false);
  assert.equal(r.name, 'AbortError', r.message);
  assert.equal(await cachedEntry(weightsOf(url)), null);
});

test('a worker terminated mid-generation: the generation fails clearly, a new load works', async () => {
  const base = new URL('tests/fixtures/tiny-f32/', server.url).href;
  const r = await page.evaluate(async ({ base, ids }) => {
    const model = await window.gpt2.loadInWorker(base);
    const gen = model.generate(ids, { temperature: 0, ignoreEot: true, maxTokens: 100 });
    const first = await gen.next();
    await model.dispose(); // terminates the worker
    try {
      for await (const _ of gen);
      return { ok: true, first: first.value.token };
    } catch (e) {
      return { ok: false, name: e.name, code: e.code, message: e.message, first: first.value.token };
    }
  }, { base, ids: english.ids });
  assert.equal(r.ok, false, 'the generation does not silently end');
  assert.equal(r.first, english.greedy[0]);
  assert.match(r.message, /disposed/);
  const again = await loadAndRun(base);
  assert.equal(again.ok, true, again.message);
});

test('misspelled options are rejected in the page, before the worker sees them', async () => {
  const base = new URL('tests/fixtures/tiny-f32/', server.url).href;
  const r = await page.evaluate(async (base) => {
    const message = async (f) => { try { await f(); return 'no error'; } catch (e) { return `${e.code}: ${e.message}`; } };
    const load = await message(() => window.gpt2.loadInWorker(base, { workerURL: 'x' }));
    const model = await window.gpt2.loadInWorker(base);
    const gen = await message(() => model.generate('Hi', { maxtokens: 3 }));
    const score = await message(() => model.score('Hi', { topk: 3 }));
    const session = await model.session();
    const append = await message(() => session.append('Hi', { specail: true }));
    await model.dispose();
    return { load, gen, score, append };
  }, base);
  assert.deepEqual(r, {
    load: "arg: unknown option 'workerURL' (did you mean 'workerUrl'?)",
    gen: "arg: unknown option 'maxtokens' (did you mean 'maxTokens'?)",
    score: "arg: unknown option 'topk' (did you mean 'topK'?)",
    append: "arg: unknown option 'specail' (did you mean 'special'?)",
  });
});

test('loadInWorker threads: 1 runs the single-thread build, the default every core (isolated page)', async () => {
  const base = new URL('tests/fixtures/tiny-f32/', server.url).href;
  const r = await page.evaluate(async ({ base, ids }) => {
    const run = async (options) => {
      const model = await window.gpt2.loadInWorker(base, options);
      const tokens = [];
      for await (const { token } of model.generate(ids, { temperature: 0, ignoreEot: true, maxTokens: 8 })) tokens.push(token);
      const out = { build: model.info.build, threads: model.info.threads, tokens };
      await model.dispose();
      return out;
    };
    return { one: await run({ threads: 1 }), auto: await run({}), cores: navigator.hardwareConcurrency, isolated: crossOriginIsolated };
  }, { base, ids: english.ids });
  assert.equal(r.isolated, true);
  assert.deepEqual([r.one.build, r.one.threads], ['wasm-simd', 1]);
  assert.equal(r.auto.threads, r.cores);
  assert.equal(r.auto.build, r.cores > 1 ? 'wasm-simd-threads' : 'wasm-simd');
  assert.deepEqual(r.one.tokens, english.greedy.slice(0, 8), 'the float64 reference greedy tokens');
  assert.deepEqual(r.auto.tokens, r.one.tokens);
});

test('two models in one page generate at the same time, each exactly', async () => {
  const a = new URL('tests/fixtures/tiny-f32/', server.url).href;
  const b = new URL('tests/fixtures/tiny-f16/', server.url).href;
  const f16 = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'tiny-f16', 'expected.json'), 'utf8'))
    .cases.find((c) => c.name === 'english');
  const r = await page.evaluate(async ({ a, b, idsA, idsB }) => {
    const [ma, mb] = await Promise.all([window.gpt2.loadInWorker(a), window.gpt2.loadInWorker(b)]);
    const run = async (m, ids) => {
      const out = [];
      for await (const p of m.generate(ids, { temperature: 0, ignoreEot: true, maxTokens: 16 })) if (p.token !== null) out.push(p.token);
      return out;
    };
    // two generations on model a at once too
    const [ta, tb, ta2] = await Promise.all([run(ma, idsA), run(mb, idsB), run(ma, idsA)]);
    await ma.dispose();
    await mb.dispose();
    return { ta, tb, ta2 };
  }, { a, b, idsA: english.ids, idsB: f16.ids });
  assert.deepEqual(r.ta, english.greedy);
  assert.deepEqual(r.ta2, english.greedy);
  assert.deepEqual(r.tb, f16.greedy);
});

test('no uncaught errors in the page', () => {
  assert.deepEqual(browser.pageErrors.map(String), []);
});
