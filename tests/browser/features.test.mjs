// Real-browser tests of the demo page's writing tools (web/): the Detect tab (token ranks,
// histogram, alternatives), the Chat tab (one RemoteSession in the worker) and the "Never use
// these words" filter. Same setup as demo.test.mjs: playwright-core driving Debian's Chromium
// (/usr/bin/chromium), a fresh persistent profile, scripts/serve.mjs. What the page shows is
// checked against the Node API (js/index.js) run on the same embedded model in this process.
// Screenshots: test-output/browser/detect.png and chat.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './launch.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = join(ROOT, 'test-output', 'browser');
const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1 };
const WAIT = { timeout: 30_000 };
const DETECT_TEXT = 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. Zebras photosynthesize quantum spreadsheets.';

let server;
let page;
let browser; // from launchBrowser
let model; // the Node model, for expected values

before(async () => {
  const { startServer } = await import('../../scripts/serve.mjs');
  const { load } = await import('../../js/index.js');
  model = await load();
  server = await startServer({ port: 0, host: '127.0.0.1', root: ROOT });
  browser = await launchBrowser({ viewport: { width: 1100, height: 900 }, timeout: WAIT.timeout });
  ({ page } = browser);
  await page.goto(new URL('web/index.html', server.url).href);
  await page.waitForSelector('body[data-state="ready"]', WAIT);
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
  if (model) model.dispose();
});

const bucketOf = (rank) => (rank < 10 ? 0 : rank < 100 ? 1 : rank < 1000 ? 2 : 3);

async function setSampling({ temperature, topK, topP, repetitionPenalty, maxTokens, seed }) {
  await page.click('#tab-generate');
  await page.fill('#temperature', String(temperature));
  await page.fill('#top-k', String(topK));
  await page.fill('#top-p', String(topP));
  await page.fill('#repetition-penalty', String(repetitionPenalty));
  await page.fill('#max-tokens', String(maxTokens));
  await page.fill('#seed', String(seed));
}

/** Clicks a button and waits until the hook counter `counter` grows. */
async function clickAndWait(selector, counter) {
  const n = await page.evaluate((c) => window.__gpt2[c], counter);
  await page.click(selector);
  await page.waitForFunction(([c, k]) => window.__gpt2[c] > k, [counter, n], WAIT);
  assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
}

async function histogram() {
  return page.$$eval('#detect-hist li[data-bucket]', (lis) => lis.map((li) => Number(li.querySelector('.count').textContent)));
}

test('Detect: tokens coloured by rank, histogram = buckets of model.score in Node, perplexity', async () => {
  const expected = model.score(DETECT_TEXT);
  const ranks = expected.tokens.filter((t) => t.rank !== null).map((t) => t.rank);
  const buckets = [0, 0, 0, 0];
  for (const r of ranks) buckets[bucketOf(r)]++;

  await page.click('#tab-detect');
  assert.equal(await page.isVisible('#panel-generate'), false);
  assert.equal(await page.getAttribute('#tab-detect', 'aria-selected'), 'true');
  await page.fill('#detect-text', DETECT_TEXT);
  await clickAndWait('#analyze', 'analyses');

  const coloured = await page.$$eval('#detect-tokens .tok[data-rank]', (spans) => spans.map((s) => ({
    rank: Number(s.dataset.rank), cls: s.className, text: s.textContent,
  })));
  assert.ok(coloured.length > 0, 'coloured tokens are shown');
  assert.deepEqual(coloured.map((t) => t.rank), ranks, 'the ranks shown are those of model.score in Node');
  for (const t of coloured) assert.match(t.cls, new RegExp(`\\bbucket-${bucketOf(t.rank)}\\b`));
  assert.equal(await page.textContent('#detect-tokens'), DETECT_TEXT, 'the tokens join back to the text');
  assert.ok(buckets[0] > 0 && buckets[2] + buckets[3] > 0, `the text mixes expected and surprising tokens (${buckets})`);

  const hist = await histogram();
  assert.equal(hist.reduce((a, b) => a + b, 0), ranks.length, 'the histogram counts every scored token');
  assert.deepEqual(hist, buckets);
  assert.match(await page.textContent('#detect-stats'), new RegExp(`Perplexity ${expected.perplexity.toFixed(1).replace('.', '\\.')}`));
  assert.equal(await page.isVisible('#detect-note'), false, 'no truncation note for a short text');
});

test('Detect: focusing a token shows its probability, rank and alternatives', async () => {
  const expected = model.score(DETECT_TEXT);
  const i = expected.tokens.findIndex((t, j) => j > 0 && t.rank > 0 && t.text.trim() !== '');
  const t = expected.tokens[i];
  await page.focus(`#detect-tokens .tok[data-index="${i}"]`);
  const detail = await page.textContent('#detect-detail');
  assert.ok(detail.includes(`rank ${t.rank + 1}`), detail);
  const alts = await page.$$eval('#detect-detail .alts li .alt-text', (lis) => lis.map((li) => li.textContent));
  assert.equal(alts.length, 5);
  assert.deepEqual(alts, t.alternatives.map((a) => `“${a.text.replace(/\n/g, '⏎')}”`));
  assert.equal(await page.getAttribute(`#detect-tokens .tok[data-index="${i}"]`, 'tabindex'), '0');

  // Hovering another token shows that one.
  const k = expected.tokens.findIndex((u, j) => j > i && u.rank !== null && u.text.trim() !== '');
  await page.hover(`#detect-tokens .tok[data-index="${k}"]`);
  assert.ok((await page.textContent('#detect-detail')).includes(`rank ${expected.tokens[k].rank + 1}`));

  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, 'detect.png'), fullPage: true });
});

test('Detect: a text longer than the context is scored on its last nCtx tokens, with a note', async () => {
  const nCtx = model.config.nCtx;
  const long = Array.from({ length: 12 }, (_, i) => `Chapter ${i + 1}. Mr. Darcy walked to Longbourn and spoke with Elizabeth.`).join(' ');
  const ids = model.tokenize(long);
  assert.ok(ids.length > nCtx);
  const expected = model.score(ids.slice(-nCtx));
  const buckets = [0, 0, 0, 0];
  for (const t of expected.tokens) if (t.rank !== null) buckets[bucketOf(t.rank)]++;
  await page.fill('#detect-text', long);
  await clickAndWait('#analyze', 'analyses');
  assert.equal(await page.isVisible('#detect-note'), true);
  assert.match(await page.textContent('#detect-note'), new RegExp(`last ${nCtx} tokens`));
  assert.deepEqual(await histogram(), buckets);
  assert.equal((await histogram()).reduce((a, b) => a + b, 0), nCtx - 1);
  assert.equal(await page.textContent('#detect-tokens'), long, 'the skipped start is shown greyed, before the tokens');
});

test('Never use these words: a second greedy generation avoids the words of the first', async () => {
  const prompt = 'The quick brown fox';
  await setSampling({ ...GREEDY, maxTokens: 30 });
  await page.fill('#prompt', prompt);
  await page.fill('#banned-words', '');
  await clickAndWait('#generate', 'generations');
  const first = await page.textContent('#output .gen');
  const banned = [...new Set(first.match(/[A-Za-z]+/g))];
  assert.ok(banned.length >= 3, `the first generation has words: ${JSON.stringify(first)}`);

  await page.fill('#banned-words', banned.join(', '));
  await clickAndWait('#generate', 'generations');
  const second = await page.textContent('#output .gen');
  assert.ok(second.length > 0);
  const words = second.match(/[A-Za-z]+/g) || [];
  for (const w of words) assert.ok(!banned.includes(w), `"${w}" is banned but appears in ${JSON.stringify(second)}`);
  assert.notEqual(second, first);

  // The page's worker produced what the Node API does with the same bannedWords.
  const gen = model.generate(prompt, { ...GREEDY, maxTokens: 30, bannedWords: banned });
  for await (const piece of gen) void piece;
  assert.equal(second, (await gen.summary).text);
  await page.fill('#banned-words', '');
});

test('Chat: two turns in one session, Regenerate and Reset', async () => {
  await setSampling({ ...GREEDY, maxTokens: 100 });
  await page.click('#tab-chat');
  await page.fill('#chat-max-tokens', '20');
  const options = { ...GREEDY, maxTokens: 20, stop: ['\n'], contextPolicy: 'stop' };
  const node = model.session();

  await page.fill('#chat-input', 'How do you do?');
  await clickAndWait('#chat-send', 'chatTurns');
  const pos1 = await page.evaluate(() => window.__gpt2.chatSession.position);
  const reply1 = await page.textContent('#chat-log .msg.reply:last-child .text');
  assert.ok(reply1.trim().length > 0, 'the first reply is not empty');
  node.append('You: How do you do?\nReply:');
  let gen = node.generate(options);
  for await (const piece of gen) void piece;
  const s1 = await gen.summary;
  assert.equal(reply1, s1.text, 'the reply equals a Node session given the same turn');
  assert.equal(pos1, node.position);

  await page.fill('#chat-input', 'Where is Mr. Darcy?');
  await clickAndWait('#chat-send', 'chatTurns');
  const pos2 = await page.evaluate(() => window.__gpt2.chatSession.position);
  const reply2 = await page.textContent('#chat-log .msg.reply:last-child .text');
  assert.ok(pos2 > pos1, `the session grew: ${pos1} -> ${pos2}`);
  assert.ok(reply2.trim().length > 0, 'the second reply is not empty');
  assert.equal(await page.$$eval('#chat-log .msg', (m) => m.length), 4);
  const text = await page.evaluate(() => window.__gpt2.chatSession.text);
  assert.ok(text.startsWith('You: How do you do?\nReply:'), JSON.stringify(text));
  assert.ok(text.includes('You: Where is Mr. Darcy?\nReply:'), JSON.stringify(text));

  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, 'chat.png'), fullPage: true });

  // Regenerate rewinds to before the reply: greedy gives the same reply and position again.
  await clickAndWait('#chat-regenerate', 'chatTurns');
  assert.equal(await page.textContent('#chat-log .msg.reply:last-child .text'), reply2);
  assert.equal(await page.evaluate(() => window.__gpt2.chatSession.position), pos2);
  assert.equal(await page.$$eval('#chat-log .msg', (m) => m.length), 4, 'the reply was replaced, not added');

  // Reset: a new, empty conversation.
  await page.click('#chat-reset');
  await page.waitForFunction(() => window.__gpt2.chatSession === null, null, WAIT);
  assert.equal(await page.$$eval('#chat-log .msg', (m) => m.length), 0);
  await page.fill('#chat-input', 'How do you do?');
  await clickAndWait('#chat-send', 'chatTurns');
  assert.equal(await page.evaluate(() => window.__gpt2.chatSession.position), pos1, 'a fresh session');
  assert.equal(await page.textContent('#chat-log .msg.reply:last-child .text'), reply1);
  node.dispose();
});

test('worker API: score topK, rank, session fork/rewind and logitBias pass through to the worker', async () => {
  const prompt = 'Review: a wonderful, moving film. Sentiment:';
  const choices = [' positive', ' negative', ' dull'];
  const got = await page.evaluate(async ([prompt, choices]) => {
    const m = window.__gpt2.model;
    const scored = await m.score('It is a truth', { topK: 2 });
    const ranked = await m.rank(prompt, choices, { by: 'sum' });
    const s = await m.session();
    await s.append('Elizabeth said');
    const p0 = await s.position;
    const f = await s.fork();
    const gen = f.generate({ temperature: 0, maxTokens: 5 });
    let text = '';
    const genIds = [];
    for await (const piece of gen) { text += piece.text; if (piece.token !== null) genIds.push(piece.token); }
    const summary = await gen.summary;
    const forkPos = await f.position;
    const origPos = await s.position;
    await f.rewind(p0);
    const rewound = { position: await f.position, text: await f.text };
    const bias = {};
    for (const id of genIds) bias[id] = -Infinity;
    const biased = f.generate({ temperature: 0, maxTokens: 5, logitBias: bias });
    let text2 = '';
    const ids2 = [];
    for await (const piece of biased) { text2 += piece.text; if (piece.token !== null) ids2.push(piece.token); }
    await f.dispose();
    await s.dispose();
    let error = null;
    try { await s.append('x'); } catch (e) { error = { name: e.name, code: e.code }; }
    return { scored, ranked, p0, text, summary, forkPos, origPos, rewound, genIds, ids2, text2, error };
  }, [prompt, choices]);
  assert.deepEqual(got.scored, model.score('It is a truth', { topK: 2 }));
  assert.equal(got.scored.tokens[1].alternatives.length, 2);
  assert.deepEqual(got.ranked, model.rank(prompt, choices, { by: 'sum' }));
  assert.equal(got.origPos, got.p0, 'generating in the fork leaves the original alone');
  assert.equal(got.forkPos, got.p0 + got.summary.tokens);
  assert.deepEqual(got.rewound, { position: got.p0, text: 'Elizabeth said' });
  assert.equal(got.genIds.length, 5);
  assert.equal(got.ids2.length, 5);
  for (const id of got.ids2) assert.ok(!got.genIds.includes(id), `token ${id} has a logit bias of -Infinity but was generated`);
  assert.deepEqual(got.error, { name: 'Gpt2Error', code: 'arg' }, 'a disposed session rejects calls');
});

test('the Detect, Chat and Teach tabs fit a 375 px phone screen; arrow keys move between tabs', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  try {
    for (const tab of ['#tab-detect', '#tab-chat', '#tab-teach']) {
      await page.click(tab);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${tab}: no horizontal scrolling at 375 px (overflow ${overflow} px)`);
    }
  } finally {
    await page.setViewportSize({ width: 1100, height: 900 });
  }
  await page.focus('#tab-chat');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-teach');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-generate');
  assert.equal(await page.isVisible('#panel-generate'), true);
  assert.equal(await page.isVisible('#panel-teach'), false);
});

test('no uncaught errors in the page', () => {
  assert.deepEqual(browser.pageErrors.map((e) => e.message), []);
});
