// What was seen when the demo page was tried as a new user would (issue 15, item 4), in
// Chromium: the first screen (Generate and the output above the fold at 1280x800 and 390x844),
// what is running (model, training, build, threads, precision), focus ring contrast, number
// fields checked against their own min/max, "1 token", warnings shown, bare model names, cancel
// as a notice, progress from the start of a local-file load, and Chat: Stop and Esc, a full
// context that slides and keeps the log, Regenerate with a fixed seed.
// Screenshots: test-output/browser/first-screen-desktop.png, first-screen-phone.png, chat-slide.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './launch.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = join(ROOT, 'test-output', 'browser');
const MODEL_FILES = ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors'].map((f) => join(ROOT, 'models', f));
const WAIT = { timeout: 30_000 };

let server;
let fixture; // a slow cross-origin model host (tests/js/helpers/server.mjs)
let browser;
let page;
let model; // the Node model, for expected values

before(async () => {
  const { startServer } = await import('../../scripts/serve.mjs');
  const { serveFolder } = await import('../js/helpers/server.mjs');
  const { load } = await import('../../js/index.js');
  model = await load();
  server = await startServer({ port: 0, host: '127.0.0.1', root: ROOT });
  fixture = await serveFolder(join(ROOT, 'tests', 'fixtures', 'tiny-f32'));
  browser = await launchBrowser({ viewport: { width: 1280, height: 800 }, timeout: WAIT.timeout });
  ({ page } = browser);
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
  if (fixture) await fixture.close();
  if (model) model.dispose();
});

const waitReady = () => page.waitForSelector('body[data-state="ready"]', WAIT);

async function clickAndWait(selector, counter) {
  const n = await page.evaluate((c) => window.__gpt2[c], counter);
  await page.click(selector);
  await page.waitForFunction(([c, k]) => window.__gpt2[c] > k, [counter, n], WAIT);
}

/** A new, empty conversation (Reset is disabled when there is none). */
async function resetChat() {
  await page.click('#tab-chat');
  if (await page.isEnabled('#chat-reset')) await page.click('#chat-reset');
  await page.waitForFunction(() => window.__gpt2.chatSession === null, null, WAIT);
}

async function setSampling(values) {
  await page.click('#tab-generate');
  for (const [id, v] of Object.entries(values)) await page.fill(`#${id}`, String(v));
}

/** WCAG 2 contrast ratio of two 'rgb(r, g, b)' colours. */
function contrast(a, b) {
  const lum = (css) => {
    const [r, g, bl] = css.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

test('first screen: Generate and the output are above the fold at 1280x800 and 390x844', async () => {
  try {
    for (const [name, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
      await page.setViewportSize(viewport);
      await page.goto(new URL('web/', server.url).href);
      await waitReady();
      const box = async (sel) => page.$eval(sel, (e) => { const r = e.getBoundingClientRect(); return { top: r.top, bottom: r.bottom }; });
      const gen = await box('#generate');
      const out = await box('#output');
      assert.ok(gen.bottom <= viewport.height, `${name}: Generate ends at ${gen.bottom} px of ${viewport.height}`);
      assert.ok(out.top + 60 <= viewport.height, `${name}: the output starts at ${out.top} px of ${viewport.height}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name}: no horizontal scrolling (${overflow} px)`);
      // The word filter is among the sampling options.
      assert.equal(await page.$eval('#banned-words', (e) => !!e.closest('#settings')), true);
      await clickAndWait('#generate', 'generations');
      await page.screenshot({ path: join(SHOTS, `first-screen-${name}.png`) });
      // The Write tab: its tools and the text fit too.
      await page.click('#tab-write');
      const tools = await box('#write-continue');
      assert.ok(tools.bottom <= viewport.height, `${name}: the Write tools end at ${tools.bottom} px`);
      const overflowWrite = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflowWrite <= 0, `${name}: Write: no horizontal scrolling (${overflowWrite} px)`);
      await page.screenshot({ path: join(SHOTS, `write-${name}.png`) });
      await page.click('#tab-generate');
    }
  } finally { // the later tests expect the desktop layout, even after a failure here
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(new URL('web/', server.url).href);
    await waitReady();
  }
});

test('what runs is shown: the model and its training, the build and threads; the default prompt fits the model', async () => {
  const info = await page.textContent('#model-info');
  assert.match(info, /Austen/);
  assert.match(info, /context 128 tokens/);
  assert.match(info, /WebAssembly SIMD, \d+ threads?/);
  const threads = await page.evaluate(() => window.__gpt2.model.info.threads);
  assert.ok(info.includes(`${threads} thread`), info);
  // The default prompt reads as Austen to the model: lower perplexity than the old default.
  const prompt = await page.inputValue('#prompt');
  const old = 'In a shocking finding, scientists discovered a herd of unicorns living in a remote valley.';
  assert.ok(model.score(prompt).perplexity < model.score(old).perplexity, prompt);
  // tokens/s after a generation
  await clickAndWait('#generate', 'generations');
  assert.match(await page.textContent('#stats'), /tokens\/s/);
});

test('precision: the choice made when loading is used', async () => {
  await page.selectOption('#precision', 'q8_0');
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  assert.equal(await page.evaluate(() => window.__gpt2.model.info.precision), 'q8_0');
  assert.match(await page.textContent('#model-info'), /q8_0 weights/);
  await page.selectOption('#precision', 'auto');
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  assert.equal(await page.evaluate(() => window.__gpt2.model.info.precision), 'f16', 'as stored');
  await waitReady();
});

test('the focus ring has at least 3:1 contrast with what is around it, light and dark', async () => {
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme });
    await page.focus('#prompt');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'generate');
    const { ring, card, width } = await page.evaluate(() => {
      const b = document.getElementById('generate');
      const s = getComputedStyle(b);
      return { ring: s.outlineColor, width: parseFloat(s.outlineWidth), card: getComputedStyle(b.closest('.card')).backgroundColor };
    });
    assert.ok(width >= 2, `outline ${width} px`);
    const ratio = contrast(ring, card);
    assert.ok(ratio >= 3, `${colorScheme}: focus ring ${ring} on ${card}: ${ratio.toFixed(2)}:1`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
});

test('number fields are checked against their own min and max', async () => {
  await setSampling({ temperature: 7 });
  await page.click('#generate');
  assert.match(await page.textContent('#error'), /Temperature must be a number from 0 to 5/);
  assert.equal(await page.getAttribute('#temperature', 'aria-invalid'), 'true');
  await page.fill('#temperature', '0.8');
  assert.equal(await page.getAttribute('#temperature', 'aria-invalid'), null, 'valid again as soon as it is fixed');
  await page.fill('#top-k', '2.5');
  await page.click('#generate');
  assert.match(await page.textContent('#error'), /Top-k must be a whole number from 0 to/);
  await page.fill('#top-k', '40');
  await page.click('#tab-chat');
  await page.fill('#chat-max-tokens', '500');
  await page.click('#chat-send');
  assert.match(await page.textContent('#error'), /Reply tokens must be a whole number from 1 to 100/);
  await page.fill('#chat-max-tokens', '30');
});

test('"1 token", not "1 tokens"', async () => {
  await setSampling({ 'max-tokens': 1, temperature: 0 });
  await clickAndWait('#generate', 'generations');
  assert.match(await page.textContent('#status'), /^Done: 1 token \(/);
  assert.match(await page.textContent('#stats'), /^1 token ·/);
  await setSampling({ 'max-tokens': 100, temperature: 0.8 });
});

test('a prompt longer than the context shows the truncation warning of the summary', async () => {
  const long = Array.from({ length: 10 }, (_, i) => `In chapter ${i + 1}, Mr. Darcy spoke with Elizabeth at Longbourn.`).join(' ');
  assert.ok(model.tokenize(long).length > model.config.nCtx);
  const gen = model.generate(long, { temperature: 0, maxTokens: 5 });
  for await (const piece of gen) void piece;
  const { warnings } = await gen.summary;
  assert.ok(warnings.length > 0);
  await setSampling({ 'max-tokens': 5, temperature: 0 });
  await page.fill('#prompt', long);
  await clickAndWait('#generate', 'generations');
  assert.equal(await page.isVisible('#gen-warnings'), true);
  const shown = await page.textContent('#gen-warnings');
  for (const w of warnings) assert.ok(shown.includes(w), `${JSON.stringify(w)} in ${JSON.stringify(shown)}`);
  // The next generation with a short prompt has none.
  await page.fill('#prompt', 'Elizabeth said');
  await clickAndWait('#generate', 'generations');
  assert.equal(await page.isVisible('#gen-warnings'), false);
  await setSampling({ 'max-tokens': 100, temperature: 0.8 });
});

test('a bare model name is accepted; a cancelled load is a notice and the picker shows the loaded model', async () => {
  // No request may reach Hugging Face from the test: answer it here.
  await browser.context.route('https://huggingface.co/**', (route) => route.fulfill({
    status: 404, body: 'not here', headers: { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' },
  }));
  try {
    await page.selectOption('#model-select', 'url');
    await page.fill('#model-url', 'gpt2');
    await clickAndWait('#load', 'loads');
    await page.evaluate(() => window.__gpt2.ready);
    assert.equal(await page.inputValue('#model-url'), 'https://huggingface.co/openai-community/gpt2/resolve/main/');
    assert.equal(await page.inputValue('#model-select'), 'embedded', 'the picker shows the model that is loaded');
    await page.selectOption('#model-select', 'url');
    await page.fill('#model-url', 'nosuchmodel');
    await page.click('#load');
    await page.waitForSelector('#error:not([hidden])', WAIT);
    assert.match(await page.textContent('#error'), /not a model name this page knows \(gpt2,/);
  } finally {
    await browser.context.unroute('https://huggingface.co/**');
  }

  // A slow download, cancelled.
  await page.fill('#model-url', fixture.url('slow'));
  await page.click('#load');
  await page.click('#cancel-load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), false);
  assert.equal(await page.isVisible('#notice'), true);
  assert.match(await page.textContent('#notice'), /Loading was cancelled\. Still using Embedded demo model/);
  assert.equal(await page.isVisible('#error'), false, 'cancelling is not an error');
  assert.equal(await page.inputValue('#model-select'), 'embedded');
  await waitReady();
});

test('progress moves from the start of a local-file load', async () => {
  const total = MODEL_FILES.reduce((a, f) => a + statSync(f).size, 0);
  await page.selectOption('#model-select', 'files');
  await page.setInputFiles('#model-files', MODEL_FILES);
  await page.evaluate(() => {
    window.__progressSeen = [];
    const record = () => window.__progressSeen.push({ text: document.getElementById('progress-text').textContent, determinate: document.getElementById('progress').hasAttribute('value') });
    new MutationObserver(record).observe(document.getElementById('progress-text'), { childList: true, characterData: true, subtree: true });
  });
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  const seen = await page.evaluate(() => window.__progressSeen);
  assert.ok(seen.length >= 2, JSON.stringify(seen));
  assert.equal(seen[0].text, `0% · 0 B of ${(total / 1e6).toFixed(1)} MB · starting…`, 'the size is shown from the start');
  assert.equal(seen[0].determinate, true);
  assert.match(seen.at(-1).text, /^100%/);
  await page.selectOption('#model-select', 'embedded');
  await page.click('#load');
  assert.equal(await page.evaluate(() => window.__gpt2.ready), true);
  await waitReady();
});

/** In the page: stops the chat reply as soon as its first text shows, with the Stop button or Esc. */
function stopReplyOnFirstText(how) {
  return page.evaluate((how) => {
    const log = document.getElementById('chat-log');
    const observer = new MutationObserver(() => {
      const r = log.querySelector('.msg.reply.streaming .text');
      if (r && r.textContent.length > 0) {
        observer.disconnect();
        if (how === 'button') document.getElementById('chat-stop').click();
        else document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }));
      }
    });
    observer.observe(log, { childList: true, subtree: true, characterData: true });
  }, how);
}

test('Chat: Stop and Esc stop a reply; the session ends where the reply shown does', async () => {
  await setSampling({ temperature: 1.5, 'top-k': 0, 'top-p': 1, 'repetition-penalty': 1, seed: 11 });
  await page.click('#tab-chat');
  await page.fill('#chat-max-tokens', '100');
  for (const how of ['button', 'escape']) {
    await resetChat();
    await page.fill('#chat-input', 'Tell me about the ball at Netherfield.');
    await stopReplyOnFirstText(how);
    await clickAndWait('#chat-send', 'chatTurns');
    const status = await page.textContent('#chat-status');
    const m = status.match(/Stopped after (\d+) tokens?/);
    assert.ok(m, `${how}: ${status}`);
    assert.ok(Number(m[1]) < 100);
    const reply = await page.textContent('#chat-log .msg.reply:last-child .text');
    const text = await page.evaluate(() => window.__gpt2.chatSession.text);
    assert.ok(text.endsWith(reply), `${how}: the session ends with the reply shown (${JSON.stringify(text.slice(-40))} / ${JSON.stringify(reply)})`);
    assert.equal(await page.isEnabled('#chat-send'), true);
    assert.equal(await page.isEnabled('#chat-stop'), false);
  }
});

test('Chat: a full context slides, the log is kept and says which turns the model no longer sees', async () => {
  await setSampling({ temperature: 0, seed: '' });
  await resetChat();
  await page.fill('#chat-max-tokens', '30');
  let sends = 0;
  for (; sends < 10; sends++) {
    await page.fill('#chat-input', `Pray, what did Mr. Bingley say at dinner on day ${sends + 1}?`);
    await clickAndWait('#chat-send', 'chatTurns');
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    if (/outgrew/.test(await page.textContent('#chat-status'))) break;
  }
  assert.ok(sends < 10, 'the context filled up');
  assert.equal(await page.$$eval('#chat-log .msg', (m) => m.length), 2 * (sends + 1), 'no turn was removed from the log');
  assert.ok(await page.$$eval('#chat-log .msg.forgotten', (m) => m.length) >= 2);
  assert.match(await page.textContent('#chat-log .slid-note'), /no longer sees/);
  const position = await page.evaluate(() => window.__gpt2.chatSession.position);
  assert.ok(position <= model.config.nCtx);
  const text = await page.evaluate(() => window.__gpt2.chatSession.text);
  assert.ok(text.includes(`day ${sends + 1}?`), 'the new turn is in the session');
  assert.ok(!text.includes('day 1?'), 'the first turn is not');
  await page.screenshot({ path: join(SHOTS, 'chat-slide.png'), fullPage: true });
});

test('Chat: Regenerate with a fixed seed takes the next seed and says so; greedy says why it repeats', async () => {
  await setSampling({ temperature: 1, 'top-k': 40, 'top-p': 0.95, seed: 5 });
  await resetChat();
  await page.fill('#chat-max-tokens', '20');
  await page.fill('#chat-input', 'How do you do?');
  await clickAndWait('#chat-send', 'chatTurns');
  await clickAndWait('#chat-regenerate', 'chatTurns');
  assert.match(await page.textContent('#chat-status'), /seed 6 \(the Seed field is fixed/);
  await clickAndWait('#chat-regenerate', 'chatTurns');
  assert.match(await page.textContent('#chat-status'), /seed 7/);
  await setSampling({ temperature: 0 });
  await page.click('#tab-chat');
  await clickAndWait('#chat-regenerate', 'chatTurns');
  assert.match(await page.textContent('#chat-status'), /temperature 0 \(greedy\) always gives this same reply/);
});

test('no uncaught errors in the page', () => {
  assert.deepEqual(browser.pageErrors.map(String), []);
});
