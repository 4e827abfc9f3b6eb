// The worker API (js/browser/index.js over js/browser/worker.js) against the in-thread API
// (js/index.js) in the same Chromium page, on the embedded model: what a generation cancelled
// with `break` reports, and methods that have no code of their own on the page's side (they
// are mirrored from Gpt2Model and Session) answering as the in-thread ones.
//
// The page is tests/browser/harness.html, served by scripts/serve.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './launch.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WAIT = { timeout: 30_000 };

let server;
let browser; // from launchBrowser
let page;

before(async () => {
  const { startServer } = await import('../../scripts/serve.mjs');
  server = await startServer({ port: 0, host: '127.0.0.1', root: ROOT });
  browser = await launchBrowser({ timeout: WAIT.timeout });
  ({ page } = browser);
  await page.goto(new URL('tests/browser/harness.html', server.url).href);
  await page.waitForSelector('body[data-ready="true"]', { ...WAIT, state: 'attached' });
  // Both APIs on the embedded model: window.remote (a worker), window.local (this thread).
  await page.evaluate(async () => {
    window.remote = await window.gpt2.loadInWorker(undefined, { threads: 1 });
    window.local = await (await import('/js/index.js')).load(undefined, { threads: 1 });
  });
});

after(async () => {
  if (page) await page.evaluate(async () => { await window.remote?.dispose(); window.local?.dispose(); }).catch(() => {});
  if (browser) await browser.close();
  if (server) await server.close();
});

/**
 * In the page: generates with the same prompt and options on both models, takes `take` pieces
 * (then `break`; take 0: return() before the first next()) and returns both summaries
 * without their timings.
 */
function cancelledSummaries(prompt, options, take) {
  return page.evaluate(async ({ prompt, options, take }) => {
    const run = async (model) => {
      const gen = model.generate(prompt, options);
      if (take === 0) {
        await gen.return();
      } else {
        let n = 0;
        for await (const piece of gen) { void piece; if (++n === take) break; }
      }
      const { timings, ...summary } = await gen.summary;
      return { summary, timingKeys: Object.keys(timings).sort() };
    };
    return { remote: await run(window.remote), local: await run(window.local) };
  }, { prompt, options, take });
}

const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1, ignoreEot: true, maxTokens: 20 };

test('a worker generation cancelled by break reports truncatedTokens, slides and warnings as the in-thread one', async () => {
  // A prompt longer than the context (128 tokens), cut on the left: truncatedTokens > 0 and a warning.
  const prompt = 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(8);
  const { remote, local } = await cancelledSummaries(prompt, { ...GREEDY, truncatePrompt: 'left' }, 3);
  assert.equal(local.summary.stopReason, 'cancelled');
  assert.equal(local.summary.tokens, 3);
  assert.ok(local.summary.truncatedTokens > 0, `the prompt was cut (${local.summary.truncatedTokens})`);
  assert.equal(local.summary.warnings.length, 1);
  assert.deepEqual(remote.summary, local.summary);
  assert.deepEqual(remote.timingKeys, local.timingKeys);
});

test('a worker generation cancelled in a sliding context reports its slides as the in-thread one', async () => {
  // 127 prompt tokens: the context (128) is full after one token and slides.
  const prompt = 'Elizabeth walked to Longbourn. '.repeat(18);
  const { remote, local } = await cancelledSummaries(prompt, { ...GREEDY, maxTokens: 80, contextPolicy: 'slide' }, 30);
  assert.equal(local.summary.stopReason, 'cancelled');
  assert.ok(local.summary.slides > 0, `the context slid (${local.summary.slides})`);
  assert.deepEqual(remote.summary, local.summary);
});

test('a worker generation cancelled before its first token has the in-thread summary', async () => {
  const { remote, local } = await cancelledSummaries('Hello', GREEDY, 0);
  assert.equal(local.summary.stopReason, 'cancelled');
  assert.deepEqual(Object.keys(remote.summary).sort(), Object.keys(local.summary).sort());
  assert.deepEqual(remote.summary, local.summary);
  assert.deepEqual(remote.timingKeys, local.timingKeys);
});

test('methods with no page-side code (logits, tokenTexts, session getters, scoreContinuation) answer as in the thread', async () => {
  const r = await page.evaluate(async () => {
    const ids = await window.remote.tokenize('Mr. Darcy bowed.');
    const both = async (f) => [await f(window.remote), await f(window.local)];
    const [rl, ll] = await both((m) => m.logits(ids));
    const [rt, lt] = await both((m) => m.tokenTexts(ids));
    const [rs, ls] = await both(async (m) => {
      const s = await m.session();
      await s.append(ids.slice(0, 3));
      const out = { computed: await s.computedTokens, lp: await s.scoreContinuation(ids.slice(0, 3), ids.slice(3)), position: await s.position, last: s.lastPosition };
      await s.dispose();
      return out;
    });
    return { remoteLogits: rl instanceof Float32Array, logits: [Array.from(rl), Array.from(ll)], texts: [rt, lt], sessions: [rs, ls], n: ids.length };
  });
  assert.ok(r.remoteLogits, 'logits arrive as a Float32Array');
  assert.equal(r.logits[0].length, 50257);
  assert.deepEqual(r.logits[0], r.logits[1]);
  assert.deepEqual(r.texts[0], r.texts[1]);
  assert.equal(r.texts[0].join(''), 'Mr. Darcy bowed.');
  const [remote, local] = r.sessions;
  assert.equal(local.last, undefined, 'an in-thread Session has no lastPosition');
  assert.equal(remote.last, r.n, 'lastPosition follows the worker\'s answers');
  delete remote.last;
  delete local.last;
  assert.deepEqual(remote, local);
  assert.equal(local.position, r.n);
});

test('a method called on a disposed session rejects with the in-thread error', async () => {
  const r = await page.evaluate(async () => {
    const s = await window.remote.session();
    await s.dispose();
    try {
      await s.append('x');
      return null;
    } catch (e) {
      return { name: e.name, code: e.code, message: e.message };
    }
  });
  assert.deepEqual(r, { name: 'Gpt2Error', code: 'arg', message: 'the session has been disposed' });
});

test('generating with a disposed worker model fails with the in-thread error, and summary rejects with it', async () => {
  const r = await page.evaluate(async () => {
    const m = await window.gpt2.loadInWorker(undefined, { threads: 1 });
    await m.dispose();
    const gen = m.generate('Hello', { maxTokens: 2 });
    const outcome = await Promise.race([
      gen.next().then(() => 'no error', (e) => `${e.name} [${e.code}]: ${e.message}`),
      new Promise((resolve) => setTimeout(() => resolve('still pending after 5 s'), 5000)),
    ]);
    const summary = await gen.summary.then(() => 'resolved', (e) => e.message);
    const local = await (await import('/js/index.js')).load(undefined, { threads: 1 });
    local.dispose();
    let expected = 'no error';
    try { local.generate('Hello', { maxTokens: 2 }); } catch (e) { expected = `${e.name} [${e.code}]: ${e.message}`; }
    return { outcome, summary, expected };
  });
  assert.equal(r.expected, 'Gpt2Error [arg]: the model has been disposed');
  assert.equal(r.outcome, r.expected);
  assert.equal(r.summary, 'the model has been disposed');
});
