// The demo page offline (issue 15): the service worker (sw.js) keeps the page, its scripts,
// both WebAssembly builds and the embedded model; a reload with no network opens the page,
// loads the model and generates, still cross-origin isolated; models downloaded before load
// offline; load errors tell offline, unreachable and CORS apart; a new version installs with
// a notice and deletes the old cache; a host that sends no isolation headers gets them from
// the service worker; the page is installable (Chromium's own check) with icons made by
// scripts/make-icons.mjs.
//
// The site is a temporary copy of web/, js/, dist/, models/ and sw.js (the update test edits a
// file in it), served by scripts/serve.mjs. Service workers need a secure context:
// http://127.0.0.1 is one. Screenshot: test-output/browser/offline-reload.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './launch.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = join(ROOT, 'test-output', 'browser');
const WAIT = { timeout: 30_000 };
const MODEL_CACHE = 'gpt2-wasm-models-v1';

let site;     // the temporary copy served
let server;   // scripts/serve.mjs on it
let fixture;  // a cross-origin model host with CORS headers (tests/js/helpers/server.mjs)
let browser;
let page;

before(async () => {
  site = mkdtempSync(join(tmpdir(), 'gpt2-site-'));
  cpSync(join(ROOT, 'web'), join(site, 'web'), { recursive: true });
  cpSync(join(ROOT, 'js'), join(site, 'js'), { recursive: true });
  mkdirSync(join(site, 'dist'));
  for (const f of ['gpt2.mjs', 'gpt2.wasm', 'gpt2-mt.mjs', 'gpt2-mt.wasm', 'gpt2-mt.worker.js', 'package.json']) {
    cpSync(join(ROOT, 'dist', f), join(site, 'dist', f));
  }
  mkdirSync(join(site, 'models'));
  for (const f of ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors']) cpSync(join(ROOT, 'models', f), join(site, 'models', f));
  cpSync(join(ROOT, 'sw.js'), join(site, 'sw.js'));

  const { startServer } = await import('../../scripts/serve.mjs');
  const { serveFolder } = await import('../js/helpers/server.mjs');
  server = await startServer({ port: 0, host: '127.0.0.1', root: site });
  fixture = await serveFolder(join(ROOT, 'tests', 'fixtures', 'tiny-f32'));
  browser = await launchBrowser({ viewport: { width: 1280, height: 800 }, timeout: WAIT.timeout });
  ({ page } = browser);
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
  if (fixture) await fixture.close();
  if (site) rmSync(site, { recursive: true, force: true });
});

const waitReady = () => page.waitForSelector('body[data-state="ready"]', WAIT);
const offlineState = () => page.evaluate(() => window.__gpt2.offline && window.__gpt2.offline.state);
const waitOffline = (state) => page.waitForFunction((s) => window.__gpt2.offline && window.__gpt2.offline.state === s, state, WAIT);
const cacheNames = () => page.evaluate(() => caches.keys());

/** Selects the embedded model and loads it; resolves when the load has ended. */
async function loadEmbedded() {
  await page.selectOption('#model-select', 'embedded');
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  await waitReady();
}

/** Loads the custom URL source on the page; returns the text of #error once the load ended. */
async function loadUrl(url) {
  await page.selectOption('#model-select', 'url');
  await page.fill('#model-url', url);
  const loads = await page.evaluate(() => window.__gpt2.loads);
  await page.click('#load');
  await page.waitForFunction((n) => window.__gpt2.loads > n, loads, WAIT);
  const ok = await page.evaluate(() => window.__gpt2.ready);
  return { ok, error: ok ? '' : await page.textContent('#error') };
}

async function generateSome() {
  const n = await page.evaluate(() => window.__gpt2.generations);
  await page.fill('#max-tokens', '20');
  await page.click('#generate');
  await page.waitForFunction((k) => window.__gpt2.generations > k, n, WAIT);
  return page.textContent('#output .gen');
}

test('first visit: the service worker keeps the page, scripts, both builds and the embedded model', async () => {
  await page.goto(new URL('web/', server.url).href);
  await waitReady();
  await waitOffline('ready');
  const manifest = JSON.parse(await (await fetch(new URL('dist/precache.json', server.url))).text());
  const version = await page.evaluate(() => window.__gpt2.offline.version);
  assert.equal(version, manifest.version);
  assert.match(await page.textContent('#offline-status'), /Saved for offline use/);
  const names = await cacheNames();
  assert.ok(names.includes(`gpt2-wasm-app-${version}`), JSON.stringify(names));
  const kept = await page.evaluate(async (name) => (await (await caches.open(name)).keys()).map((r) => new URL(r.url).pathname), `gpt2-wasm-app-${version}`);
  for (const p of ['/web/index.html', '/web/app.js', '/web/write.js', '/web/style.css', '/web/manifest.webmanifest',
    '/js/browser/index.js', '/js/browser/worker.js', '/js/index.js', '/dist/gpt2.mjs', '/dist/gpt2.wasm', '/dist/gpt2-mt.mjs',
    '/dist/gpt2-mt.wasm', '/dist/gpt2-mt.worker.js', '/models/config.json', '/models/vocab.json', '/models/merges.txt',
    '/models/model.safetensors']) {
    assert.ok(kept.includes(p), `${p} is precached (${kept.length} entries)`);
  }
  // The precached copy of the weights is the file itself.
  const size = await page.evaluate(async (name) => (await (await (await caches.open(name)).match('/models/model.safetensors')).blob()).size, `gpt2-wasm-app-${version}`);
  assert.equal(size, readFileSync(join(site, 'models', 'model.safetensors')).byteLength);
});

test('a model from another origin, loaded once online, is kept in the model cache', async () => {
  const r = await loadUrl(fixture.url('normal'));
  assert.equal(r.ok, true, r.error);
  assert.ok((await cacheNames()).includes(MODEL_CACHE));
  await loadEmbedded();
});

test('offline reload: the page opens, loads the embedded model, generates, still cross-origin isolated', async (t) => {
  const before = { ...server.counts };
  await browser.context.setOffline(true);
  try {
    await page.reload();
    await waitReady();
    assert.equal(await page.evaluate(() => navigator.serviceWorker.controller !== null), true, 'controlled by the service worker');
    assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'cross-origin isolated offline');
    const info = await page.textContent('#model-info');
    const threads = await page.evaluate(() => navigator.hardwareConcurrency);
    if (threads > 1) assert.match(info, /WebAssembly SIMD, [2-9]\d* threads/, 'the threaded build runs offline');
    assert.equal(await page.isVisible('#net-status'), true);
    const banner = await page.textContent('#net-status');
    assert.match(banner, /offline.*still work/i);
    assert.ok(banner.includes(new URL(fixture.url('normal')).host + '/normal/'), `the saved model is named: ${banner}`);
    const text = await generateSome();
    assert.ok(text.length > 0, 'text grows');
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'offline-reload.png') });
    t.diagnostic(info);

    // The model from the other origin loads from the model cache with no network.
    const again = await loadUrl(fixture.url('normal'));
    assert.equal(again.ok, true, again.error);

    // One never downloaded: the error says offline, not CORS.
    const missing = await loadUrl(fixture.url('chunked'));
    assert.equal(missing.ok, false);
    assert.match(missing.error, /You are offline/);
    assert.doesNotMatch(missing.error, /CORS|cross-origin/i);
    assert.equal(await page.inputValue('#model-select'), 'url', 'the picker shows the model that is loaded (the cached one)');
    // (The browser's own update check of the service worker script is not the page's and
    // not subject to the emulated offline state: it is left out.)
    const after = { ...server.counts };
    delete after['/sw.js'];
    delete before['/sw.js'];
    assert.deepEqual(after, before, 'nothing reached the server while offline');
  } finally {
    await browser.context.setOffline(false);
  }
  await loadEmbedded();
  assert.equal(await page.isVisible('#net-status'), false, 'the banner goes when the network is back');
});

test('load errors: an unreachable host and a host without CORS headers are told apart', async (t) => {
  const t0 = Date.now();
  // A closed port: nothing answers.
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const closedPort = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
  const unreachable = await loadUrl(`http://127.0.0.1:${closedPort}/model/`);
  assert.equal(unreachable.ok, false);
  assert.match(unreachable.error, /could not be reached/);
  assert.doesNotMatch(unreachable.error, /CORS/);
  t.diagnostic(`unreachable: ${Date.now() - t0} ms`);

  // A server that answers, without Access-Control-Allow-Origin.
  const noCors = createServer((req, res) => { res.setHeader('Content-Type', 'application/json'); res.end('{}'); });
  await new Promise((resolve) => noCors.listen(0, '127.0.0.1', resolve));
  try {
    const cors = await loadUrl(`http://127.0.0.1:${noCors.address().port}/model/`);
    assert.equal(cors.ok, false);
    assert.match(cors.error, /does not let this page read its files/);
    assert.match(cors.error, /CORS/);
    t.diagnostic(`cors: ${Date.now() - t0} ms`);
  } finally {
    await new Promise((resolve) => noCors.close(resolve));
  }
  assert.equal(await page.inputValue('#model-select'), 'embedded', 'the picker shows the model that is loaded');
});

test('a new version: notice, reload, the old cache deleted, unchanged files not downloaded again', async () => {
  const oldVersion = await page.evaluate(() => window.__gpt2.offline.version);
  const weights = server.counts['/models/model.safetensors'] || 0;
  const css = server.counts['/web/style.css'] || 0;
  appendFileSync(join(site, 'web', 'style.css'), '\nbody { --update-marker: 1; }\n');
  await page.reload();
  await waitReady();
  await page.waitForSelector('#update-notice:not([hidden])', WAIT);
  assert.equal(await offlineState(), 'update');
  assert.match(await page.textContent('#update-notice'), /new version/i);
  assert.ok((server.counts['/web/style.css'] || 0) > css, 'the changed file was downloaded');
  assert.equal(server.counts['/models/model.safetensors'] || 0, weights, 'the unchanged weights were copied, not downloaded');

  await Promise.all([page.waitForEvent('load', WAIT), page.click('#update-reload')]);
  await waitReady();
  await waitOffline('ready');
  const newVersion = await page.evaluate(() => window.__gpt2.offline.version);
  assert.notEqual(newVersion, oldVersion);
  const names = await cacheNames();
  assert.ok(names.includes(`gpt2-wasm-app-${newVersion}`), JSON.stringify(names));
  assert.ok(!names.includes(`gpt2-wasm-app-${oldVersion}`), `the old cache is deleted: ${JSON.stringify(names)}`);
  assert.ok(names.includes(MODEL_CACHE), 'downloaded models are kept');
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).getPropertyValue('--update-marker').trim()), '1');
  assert.equal(await page.isVisible('#update-notice'), false);
});

test('installable: Chromium reports no installability error; the icons are the script\'s output', async () => {
  const cdp = await browser.context.newCDPSession(page);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors, []);
  const manifest = JSON.parse(readFileSync(join(ROOT, 'web', 'manifest.webmanifest'), 'utf8'));
  assert.equal(manifest.display, 'standalone');
  assert.match(manifest.theme_color, /^#[0-9a-f]{6}$/i);
  assert.ok(manifest.name);
  // Each icon is a PNG of the size it declares (read from its IHDR chunk).
  for (const icon of manifest.icons) {
    const png = readFileSync(join(ROOT, 'web', icon.src));
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    assert.equal(`${png.readUInt32BE(16)}x${png.readUInt32BE(20)}`, icon.sizes);
  }
  const sizes = manifest.icons.map((i) => i.sizes);
  assert.ok(sizes.includes('192x192') && sizes.includes('512x512'));
  // The committed icons are what scripts/make-icons.mjs draws.
  const { makeIcons } = await import('../../scripts/make-icons.mjs');
  const out = mkdtempSync(join(tmpdir(), 'gpt2-icons-'));
  try {
    for (const p of makeIcons(out)) {
      const name = p.split('/').pop();
      assert.ok(readFileSync(p).equals(readFileSync(join(ROOT, 'web', 'icons', name))), `${name} is up to date`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a host that sends no isolation headers: the service worker adds them from the second visit', async () => {
  const { startServer } = await import('../../scripts/serve.mjs');
  const plain = await startServer({
    port: 0, host: '127.0.0.1', root: site,
    onRequest: (req, res) => {
      const set = res.setHeader.bind(res);
      res.setHeader = (k, v) => (/^cross-origin-/i.test(k) ? res : set(k, v));
      return false;
    },
  });
  const other = await launchBrowser({ viewport: { width: 1280, height: 800 }, timeout: WAIT.timeout });
  try {
    const p = other.page;
    await p.goto(new URL('web/', plain.url).href);
    await p.waitForSelector('body[data-state="ready"]', WAIT);
    assert.equal(await p.evaluate(() => crossOriginIsolated), false, 'the host sends no COOP/COEP');
    await p.waitForFunction(() => window.__gpt2.offline && window.__gpt2.offline.state === 'ready', null, WAIT);
    await p.reload();
    await p.waitForSelector('body[data-state="ready"]', WAIT);
    assert.equal(await p.evaluate(() => crossOriginIsolated), true, 'isolated through the service worker');
    assert.deepEqual(other.pageErrors.map(String), []);
  } finally {
    await other.close();
    await plain.close();
  }
});

test('no uncaught errors in the page', () => {
  assert.deepEqual(browser.pageErrors.map(String), []);
  assert.ok(existsSync(join(SHOTS, 'offline-reload.png')));
});
