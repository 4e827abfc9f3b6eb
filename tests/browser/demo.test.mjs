// Real-browser tests of the demo page (web/), with playwright-core driving Debian's Chromium
// (/usr/bin/chromium; CI installs it: apt-get install chromium). No browser is downloaded.
//
// One browser (a fresh, empty persistent profile) and one server (scripts/serve.mjs, with the
// COOP/COEP headers) for the whole file; the tests run in order and share the page.
// Screenshots go to test-output/browser/ (demo.png at desktop width, demo-phone.png at 375 px).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './launch.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = join(ROOT, 'test-output', 'browser');
const WEIGHTS_PATH = '/models/model.safetensors';
const PROMPT = 'The quick brown fox';
const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1 };
const WAIT = { timeout: 30_000 };

let server;
let page;
let browser; // from launchBrowser

before(async () => {
  const { startServer } = await import('../../scripts/serve.mjs');
  server = await startServer({ port: 0, host: '127.0.0.1', root: ROOT });
  browser = await launchBrowser({ viewport: { width: 1100, height: 900 }, timeout: WAIT.timeout });
  ({ page } = browser);
  await page.goto(new URL('web/index.html', server.url).href);
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
});

const waitReady = () => page.waitForSelector('body[data-state="ready"]', WAIT);
const weightRequests = () => server.counts[WEIGHTS_PATH] || 0;

async function setSampling({ temperature, topK, topP, repetitionPenalty, maxTokens, seed }) {
  await page.fill('#temperature', String(temperature));
  await page.fill('#top-k', String(topK));
  await page.fill('#top-p', String(topP));
  await page.fill('#repetition-penalty', String(repetitionPenalty));
  await page.fill('#max-tokens', String(maxTokens));
  await page.fill('#seed', String(seed));
}

/** Clicks Generate and waits for the generation to end; returns the generated text shown. */
async function generateOnPage() {
  const before = await page.evaluate(() => window.__gpt2.generations);
  await page.click('#generate');
  await page.waitForFunction((n) => window.__gpt2.generations > n, before, WAIT);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
  return page.textContent('#output .gen');
}

test('the page loads the embedded model on open, and the progress bar reaches 100%', async () => {
  await waitReady();
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  assert.equal(await page.isVisible('#error'), false, 'no error after the first load');
  const progress = await page.$eval('#progress', (p) => ({ value: p.value, max: p.max }));
  assert.equal(progress.value, progress.max);
  assert.match(await page.textContent('#progress-text'), /^100%/);
  assert.match(await page.textContent('#status'), /^Ready/);
  assert.equal(await page.isEnabled('#generate'), true);
  assert.ok(weightRequests() >= 1, `the weights were fetched from the server (${WEIGHTS_PATH})`);
});

test('greedy generation on the page equals the Node API', async () => {
  const maxTokens = 40;
  const { load } = await import('../../js/index.js');
  const model = await load();
  let expected;
  try {
    const gen = model.generate(PROMPT, { ...GREEDY, maxTokens });
    for await (const piece of gen) void piece;
    expected = (await gen.summary).text;
  } finally {
    model.dispose();
  }

  await page.fill('#prompt', PROMPT);
  await setSampling({ ...GREEDY, maxTokens });
  const shown = await generateOnPage();
  assert.equal(shown, expected);
  assert.equal(await page.textContent('#output .prompt'), PROMPT);
  const summary = await page.evaluate(() => window.__gpt2.lastSummary);
  assert.equal(summary.text, expected);
  assert.match(await page.textContent('#status'), /^Done/);
  assert.match(await page.textContent('#stats'), /tokens/);
  assert.match(await page.textContent('#stats'), /first token \d+ ms/);

  // Ctrl+Enter generates the same text again.
  await page.evaluate(() => { document.getElementById('output').textContent = ''; });
  const before = await page.evaluate(() => window.__gpt2.generations);
  await page.focus('#prompt');
  await page.keyboard.press('Control+Enter');
  await page.waitForFunction((n) => window.__gpt2.generations > n, before, WAIT);
  assert.equal(await page.textContent('#output .gen'), expected);
});

test('screenshots of the page after a generation (desktop and 375 px phone width)', async () => {
  mkdirSync(SHOTS, { recursive: true });
  await page.fill('#prompt', 'In a shocking finding, scientists discovered a herd of unicorns.');
  await page.click('#defaults');
  await page.fill('#seed', '7');
  await page.fill('#max-tokens', '60');
  await generateOnPage();
  await page.screenshot({ path: join(SHOTS, 'demo.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at 375 px (overflow ${overflow} px)`);
  await page.screenshot({ path: join(SHOTS, 'demo-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1100, height: 900 });
  assert.ok(existsSync(join(SHOTS, 'demo.png')) && existsSync(join(SHOTS, 'demo-phone.png')));
});

test('Stop halts a long generation', async (t) => {
  await page.fill('#prompt', 'Hello');
  const nCtx = await page.evaluate(() => window.__gpt2.model.config.nCtx);
  const maxTokens = nCtx - 2; // as long as the context allows
  await setSampling({ temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 3, maxTokens });
  // Press Stop from inside the page as soon as the first generated text is shown (no round trip).
  await page.evaluate(() => {
    const output = document.getElementById('output');
    const observer = new MutationObserver(() => {
      const gen = output.querySelector('.gen');
      if (gen && gen.textContent.length > 0) {
        observer.disconnect();
        document.getElementById('stop').click();
      }
    });
    observer.observe(output, { childList: true, subtree: true, characterData: true });
  });
  await page.click('#generate');
  await page.waitForFunction(() => /^Stopped/.test(document.getElementById('status').textContent), null, WAIT);
  const status = await page.textContent('#status');
  const tokens = Number(status.match(/Stopped after (\d+) token/)[1]);
  t.diagnostic(`stopped after ${tokens} of ${maxTokens} tokens`);
  assert.ok(tokens < maxTokens, `stopped early (${tokens} of ${maxTokens} tokens)`);
  const before = await page.textContent('#output .gen');
  await page.waitForTimeout(400);
  assert.equal(await page.textContent('#output .gen'), before, 'the output does not grow after Stop');
  assert.equal(await page.getAttribute('body', 'data-state'), 'ready');
  assert.equal(await page.isEnabled('#generate'), true);
  assert.equal(await page.isEnabled('#stop'), false);
  assert.equal(await page.isVisible('#error'), false, 'stopping is not an error');
});

test('a main-thread timer keeps ticking during generation', async (t) => {
  await page.fill('#prompt', 'Once upon a time');
  const nCtx = await page.evaluate(() => window.__gpt2.model.config.nCtx);
  await setSampling({ temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1, seed: 5, maxTokens: nCtx - 8 });
  // Back-to-back generations for ~1.5 s while a 10 ms interval records when it runs.
  const result = await page.evaluate(async () => {
    const ticks = [];
    const timer = setInterval(() => ticks.push(performance.now()), 10);
    const idle = () => new Promise((resolve) => {
      const check = () => (document.body.dataset.state === 'ready' ? resolve() : setTimeout(check, 5));
      check();
    });
    const start = performance.now();
    let generations = 0;
    let generatingMs = 0;
    while (performance.now() - start < 1500) {
      const t0 = performance.now();
      document.getElementById('generate').click();
      await idle();
      generatingMs += performance.now() - t0;
      generations++;
    }
    const end = performance.now();
    clearInterval(timer);
    let maxGap = ticks.length ? ticks[0] - start : end - start;
    for (let i = 1; i < ticks.length; i++) maxGap = Math.max(maxGap, ticks[i] - ticks[i - 1]);
    return { ticks: ticks.length, maxGap, generations, generatingMs, elapsed: end - start, summary: window.__gpt2.lastSummary };
  });
  const { summary, ...facts } = result;
  t.diagnostic(JSON.stringify({ ...facts, maxGap: Math.round(facts.maxGap), generatingMs: Math.round(facts.generatingMs), elapsed: Math.round(facts.elapsed) }));
  assert.ok(result.generations >= 1 && result.summary && result.summary.tokens > 0, JSON.stringify(result));
  assert.ok(result.maxGap < 150, `longest pause of the main thread ${result.maxGap.toFixed(0)} ms (${JSON.stringify(result)})`);
  assert.ok(result.ticks >= result.elapsed / 10 / 3, `the timer ran ${result.ticks} times in ${result.elapsed.toFixed(0)} ms`);
});

test('a bad model URL shows an error and the page stays usable', async () => {
  await page.selectOption('#model-select', 'url');
  assert.equal(await page.isVisible('#model-url'), true);
  await page.fill('#model-url', new URL('no-such-model/', server.url).href);
  await page.click('#load');
  await page.waitForSelector('#error:not([hidden])', WAIT);
  const error = await page.textContent('#error');
  assert.match(error, /could not|not found|404|failed/i);
  await waitReady(); // the embedded model is still loaded
  assert.equal(await page.inputValue('#model-select'), 'embedded', 'the picker shows the model that is loaded');
  assert.equal(await page.isEnabled('#load'), true);
  assert.equal(await page.isEnabled('#generate'), true);

  // A generation still works, and clears the error.
  await page.fill('#prompt', PROMPT);
  await setSampling({ ...GREEDY, maxTokens: 5 });
  const text = await generateOnPage();
  assert.equal(await page.isVisible('#error'), false);
  assert.ok(text.length > 0);

  // Loading the embedded model again works too.
  await page.selectOption('#model-select', 'embedded');
  const loads = await page.evaluate(() => window.__gpt2.loads);
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.loads), loads + 1);
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  await waitReady();
});

test('local files: missing and broken files give errors, the four good files load', async () => {
  const models = join(ROOT, 'models');
  const good = ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors'].map((f) => join(models, f));
  await page.selectOption('#model-select', 'files');
  assert.equal(await page.isVisible('#model-files'), true);

  await page.setInputFiles('#model-files', good.slice(0, 3));
  await page.click('#load');
  await page.waitForSelector('#error:not([hidden])', WAIT);
  assert.match(await page.textContent('#error'), /Missing: model\.safetensors/);

  const asBuffer = (path) => ({ name: path.split('/').pop(), mimeType: 'application/octet-stream', buffer: readFileSync(path) });
  await page.setInputFiles('#model-files', [...good.slice(0, 3).map(asBuffer),
    { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a checkpoint') }]);
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), false);
  assert.equal(await page.isVisible('#error'), true);
  assert.match(await page.textContent('#error'), /not a valid GPT-2 checkpoint|could not be loaded/);
  await waitReady(); // the previous model is still there
  assert.equal(await page.inputValue('#model-select'), 'embedded', 'the picker shows the model that is loaded');

  await page.selectOption('#model-select', 'files');
  await page.setInputFiles('#model-files', good);
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  assert.equal(await page.isVisible('#error'), false);
  assert.match(await page.textContent('#model-info'), /^local files/);
  await page.selectOption('#model-select', 'embedded');
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  await waitReady();
});

test('a reload loads the model from the cache, not from the server', async () => {
  const before = weightRequests();
  assert.ok(before >= 1);
  await page.reload();
  await waitReady();
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  assert.match(await page.textContent('#progress-text'), /^100%/);
  assert.equal(weightRequests(), before, `${WEIGHTS_PATH} was not requested again`);
  const text = await generateOnPage();
  assert.ok(text.length > 0);

  // Clearing the cache reports how many entries went.
  await page.click('#clear-cache');
  await page.waitForFunction(() => /entr(y|ies) removed/.test(document.getElementById('status').textContent), null, WAIT);
  assert.match(await page.textContent('#status'), /[1-9]\d* entr(y|ies) removed/);
});

test('no uncaught errors in the page', () => {
  assert.deepEqual(browser.pageErrors.map((e) => e.message), []);
});
