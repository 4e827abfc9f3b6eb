// The demo page with big models (issue 17, item 6), in Chromium: before a download, gpt2-large
// and gpt2-xl show the download size, the precision 'auto' will use and why, and the memory
// (from the core's estimate), and every Hugging Face choice of the picker gets its size that
// way (none is typed in its label); the draft option ("Speed up with a draft model") gives the same
// greedy text as without it and shows the acceptance; the phone layout still fits.
// No byte comes from Hugging Face: its URLs are answered here, with the published config.json
// of each model and a model.safetensors that is only a header of the published tensor shapes
// (answering HTTP Range requests; its size is what the whole file would be).
// Screenshots: test-output/browser/bigmodel-plan-desktop.png, bigmodel-plan-phone.png, bigmodel-draft.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './launch.mjs';
import { PRECISIONS } from '../../js/constants.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = join(ROOT, 'test-output', 'browser');
const WAIT = { timeout: 60_000 };
const GB = 1e9;

// The published shapes (config.json of each repository), and the repositories the picker offers.
const SHAPES = {
  distilgpt2: { n_layer: 6, n_head: 12, n_embd: 768 },
  gpt2: { n_layer: 12, n_head: 12, n_embd: 768 },
  'gpt2-medium': { n_layer: 24, n_head: 16, n_embd: 1024 },
  'gpt2-large': { n_layer: 36, n_head: 20, n_embd: 1280 },
  'gpt2-xl': { n_layer: 48, n_head: 25, n_embd: 1600 },
};
const REPOS = {
  'distilbert/distilgpt2': 'distilgpt2', 'openai-community/gpt2': 'gpt2', 'openai-community/gpt2-medium': 'gpt2-medium',
  'openai-community/gpt2-large': 'gpt2-large', 'openai-community/gpt2-xl': 'gpt2-xl',
};
const V = 50257, CTX = 1024;

function configJson(name) {
  return JSON.stringify({
    activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], bos_token_id: 50256, eos_token_id: 50256,
    layer_norm_epsilon: 1e-5, model_type: 'gpt2', n_ctx: CTX, n_positions: CTX, vocab_size: V, ...SHAPES[name],
  }, null, 2);
}

/** The F32 tensors of a GPT-2 checkpoint in Hugging Face's names, and their parameter count. */
function tensors(name) {
  const { n_layer: L, n_embd: C } = SHAPES[name];
  const list = [['wte.weight', [V, C]], ['wpe.weight', [CTX, C]], ['ln_f.weight', [C]], ['ln_f.bias', [C]]];
  for (let i = 0; i < L; i++) {
    for (const [t, shape] of [['ln_1.weight', [C]], ['ln_1.bias', [C]], ['attn.c_attn.weight', [C, 3 * C]],
      ['attn.c_attn.bias', [3 * C]], ['attn.c_proj.weight', [C, C]], ['attn.c_proj.bias', [C]], ['ln_2.weight', [C]],
      ['ln_2.bias', [C]], ['mlp.c_fc.weight', [C, 4 * C]], ['mlp.c_fc.bias', [4 * C]], ['mlp.c_proj.weight', [4 * C, C]],
      ['mlp.c_proj.bias', [C]]]) list.push([`h.${i}.${t}`, shape]);
  }
  return list;
}

/** A model.safetensors of the shapes: its header bytes and the size of the whole file. */
function safetensors(name) {
  const header = {};
  let at = 0;
  for (const [t, shape] of tensors(name)) {
    const n = shape.reduce((a, b) => a * b, 1) * 4;
    header[t] = { dtype: 'F32', shape, data_offsets: [at, at + n] };
    at += n;
  }
  const json = Buffer.from(JSON.stringify(header));
  const head = Buffer.alloc(8 + json.length);
  head.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(head, 8);
  return { head, size: head.length + at, params: at / 4 };
}

const TOKENIZER = { 'vocab.json': readFileSync(join(ROOT, 'models', 'vocab.json')), 'merges.txt': readFileSync(join(ROOT, 'models', 'merges.txt')) };

/** What downloading a model served here would take: the four files' bytes, and its parameters. */
function download(name) {
  const st = safetensors(name);
  return { bytes: Buffer.byteLength(configJson(name)) + TOKENIZER['vocab.json'].length + TOKENIZER['merges.txt'].length + st.size, params: st.params };
}
const CORS = {
  'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Headers': 'Range',
  'Access-Control-Expose-Headers': 'Content-Range, Content-Length', 'Cross-Origin-Resource-Policy': 'cross-origin',
};

let server;
let browser;
let page;
let model; // the Node model, for expected greedy text
let estimate; // the core's estimate (the one the memory table uses), in Node
const requests = []; // { url, method, range } of every request to huggingface.co

before(async () => {
  const { startServer } = await import('../../scripts/serve.mjs');
  const { load } = await import('../../js/index.js');
  const { Core } = await import('../../js/core.js');
  const { createModule } = await import('../../js/wasm_module.js');
  model = await load();
  const core = new Core(await createModule({ threads: 1 }));
  estimate = (name, precision) => {
    const [p, n] = core.string(configJson(name));
    try { return core.m._wasm_model_bytes(p, n, PRECISIONS.indexOf(precision), 0, core.err); } finally { core.free(p); }
  };
  server = await startServer({ port: 0, host: '127.0.0.1', root: ROOT });
  browser = await launchBrowser({ viewport: { width: 1280, height: 800 }, timeout: WAIT.timeout });
  ({ page } = browser);
  const files = Object.fromEntries(Object.keys(SHAPES).map((n) => [n, safetensors(n)]));
  await browser.context.route('https://huggingface.co/**', async (route) => {
    const req = route.request();
    const url = new URL(req.url());
    const range = req.headers().range;
    requests.push({ url: url.pathname, method: req.method(), range });
    if (req.method() === 'OPTIONS') return route.fulfill({ status: 204, headers: { ...CORS, 'Access-Control-Allow-Methods': 'GET, HEAD' } });
    const m = url.pathname.match(/^\/([\w.-]+\/[\w.-]+)\/resolve\/main\/([\w.]+)$/);
    const name = m && REPOS[m[1]];
    if (!name) return route.fulfill({ status: 404, headers: CORS, body: 'not here' });
    const file = m[2];
    if (file === 'config.json') return route.fulfill({ status: 200, headers: { ...CORS, 'Content-Type': 'application/json' }, body: configJson(name) });
    if (TOKENIZER[file]) return route.fulfill({ status: 200, headers: CORS, body: TOKENIZER[file] });
    if (file !== 'model.safetensors') return route.fulfill({ status: 404, headers: CORS, body: 'not here' });
    const st = files[name];
    const r = range && range.match(/^bytes=(\d+)-(\d+)$/);
    // Only the header exists here: a request beyond it (a download) is refused.
    if (!r || Number(r[2]) >= st.head.length) return route.fulfill({ status: 500, headers: CORS, body: 'the test serves only the header' });
    const [from, to] = [Number(r[1]), Number(r[2])];
    return route.fulfill({
      status: 206, headers: { ...CORS, 'Content-Range': `bytes ${from}-${to}/${st.size}`, 'Content-Type': 'application/octet-stream' },
      body: st.head.subarray(from, to + 1),
    });
  });
  mkdirSync(SHOTS, { recursive: true });
  await page.goto(new URL('web/index.html', server.url).href);
  await page.waitForSelector('body[data-state="ready"]', WAIT);
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
  if (model) model.dispose();
});

/** Picks a model (and precision) and waits for the line under the picker. */
async function plan(select, precision = 'auto') {
  const n = await page.evaluate(() => window.__gpt2.plans);
  if ((await page.inputValue('#precision')) !== precision) await page.selectOption('#precision', precision);
  await page.selectOption('#model-select', select);
  await page.waitForFunction((k) => window.__gpt2.plans > k && !document.querySelector('#model-plan').textContent.startsWith('Checking'), n, WAIT);
  return { text: await page.textContent('#model-plan'), plan: await page.evaluate(() => window.__gpt2.lastPlan) };
}

const gb = (b) => `${(b / GB).toFixed(1)} GB`;

test('gpt2-large and gpt2-xl: download size, precision, why, and memory before downloading', async () => {
  const downloads = Object.fromEntries(['gpt2-large', 'gpt2-xl'].map((n) => [n, download(n)]));
  // The published parameter counts (774M, 1558M): the shapes are right.
  assert.equal(Math.round(downloads['gpt2-large'].params / 1e6), 774);
  assert.equal(Math.round(downloads['gpt2-xl'].params / 1e6), 1558);

  // gpt2-xl: f32 (as published) needs more than WebAssembly's 4 GB, so auto takes f16.
  const xl = await plan('hf:openai-community/gpt2-xl');
  assert.equal(xl.plan.stored, 'f32');
  assert.equal(xl.plan.precision, 'f16');
  assert.ok(xl.plan.bytes.f32 > 2 ** 32, 'f32 xl is over 4 GB');
  assert.ok(xl.plan.bytes.f16 >= 2 * downloads['gpt2-xl'].params && xl.plan.bytes.f16 < xl.plan.budget);
  assert.equal(xl.plan.bytes.f32, estimate('gpt2-xl', 'f32'), 'the core estimate, as the memory table');
  assert.equal(xl.plan.need, estimate('gpt2-xl', 'f16'));
  assert.ok(xl.plan.budget > 4.2 * GB && xl.plan.budget < 2 ** 32, `budget ${xl.plan.budget}`);
  assert.equal(xl.text, `Download ${gb(downloads['gpt2-xl'].bytes)}. f32 needs ${gb(xl.plan.bytes.f32)}, more than the ` +
    `${gb(xl.plan.budget)} WebAssembly can use here: loads as f16, ${gb(xl.plan.need)} of memory.`);
  assert.match(xl.text, /^Download 6\.\d GB\. f32 needs 6\.9 GB, more than the 4\.3 GB WebAssembly can use here: loads as f16, 3\.8 GB of memory\.$/);
  assert.equal(await page.isVisible('#model-plan'), true);
  await page.screenshot({ path: join(SHOTS, 'bigmodel-plan-desktop.png') });

  // gpt2-large: f32 fits.
  const large = await plan('hf:openai-community/gpt2-large');
  assert.equal(large.plan.precision, 'f32');
  assert.equal(large.plan.need, estimate('gpt2-large', 'f32'));
  assert.ok(large.plan.need >= 4 * downloads['gpt2-large'].params);
  assert.equal(large.text, `Download ${gb(downloads['gpt2-large'].bytes)}. Loads as f32 (as stored), ${gb(large.plan.need)} of memory ` +
    `(of ${gb(large.plan.budget)} WebAssembly can use).`);
  // An explicit precision: as asked, with its memory.
  const q8 = await plan('hf:openai-community/gpt2-large', 'q8_0');
  assert.equal(q8.plan.precision, 'q8_0');
  assert.equal(q8.plan.need, estimate('gpt2-large', 'q8_0'));
  assert.match(q8.text, /Loads as q8_0 \(as asked\), 1\.2 GB of memory/); // 774M weights at 8.5 bits + the f32 KV cache and activations
  await page.selectOption('#precision', 'auto');

  // Only headers were read: every model.safetensors request was a Range within the first MB.
  const weights = requests.filter((r) => r.url.endsWith('model.safetensors') && r.method !== 'OPTIONS');
  assert.ok(weights.length >= 2);
  for (const r of weights) assert.match(r.range || '', /^bytes=0-\d{1,6}$/, JSON.stringify(r));
  assert.equal(await page.isVisible('#error'), false);
  // The loaded model is untouched; the picker goes back to it.
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready');
  await page.selectOption('#model-select', 'embedded');
  assert.equal(await page.isVisible('#model-plan'), false);
});

test('every Hugging Face choice shows the size read from its files (none is typed in the picker)', async () => {
  const options = await page.$$eval('#model-select optgroup[label="Hugging Face"] option', (os) => os.map((o) => ({ value: o.value, text: o.textContent })));
  assert.deepEqual(options.map((o) => o.value).sort(), Object.keys(REPOS).map((r) => `hf:${r}`).sort());
  // The published parameter counts (82M, 124M, 355M): the shapes are right.
  assert.deepEqual(['distilgpt2', 'gpt2', 'gpt2-medium'].map((n) => Math.round(download(n).params / 1e6)), [82, 124, 355]);
  for (const o of options) {
    assert.doesNotMatch(o.text, /\d\s*[kMG]B\b/, `${o.value}: no size typed by hand`);
    const bytes = download(REPOS[o.value.slice(3)]).bytes;
    const size = bytes >= GB ? gb(bytes) : `${(bytes / 1e6).toFixed(0)} MB`;
    const { text } = await plan(o.value);
    assert.ok(text.startsWith(`Download ${size}. `), `${o.value}: ${text}`);
  }
  await page.selectOption('#model-select', 'embedded');
});

test('the draft option: a q8_0 self-draft gives the greedy text of the model alone, and the acceptance rate', async () => {
  const prompt = 'Elizabeth could not help smiling as she said to her sister,';
  const greedy = { temperature: 0, maxTokens: 40 };
  const gen = model.generate(prompt, greedy);
  for await (const piece of gen) assert.ok(piece); // the generation runs as it is read
  const expected = (await gen.summary).text;
  assert.match(await page.textContent('#model-info'), /precision auto: f16 as stored/);

  await page.evaluate(() => { document.querySelector('#settings').open = true; });
  await page.fill('#prompt', prompt);
  await page.click('#greedy'); // temperature 0, no top-k / top-p / repetition penalty
  await page.fill('#max-tokens', '40');
  await page.fill('#banned-words', '');
  const generate = async () => {
    const n = await page.evaluate(() => window.__gpt2.generations);
    await page.click('#generate');
    await page.waitForFunction((k) => window.__gpt2.generations > k, n, WAIT);
    assert.equal(await page.isVisible('#error'), false, await page.textContent('#error'));
    return page.evaluate(() => window.__gpt2.lastSummary);
  };
  const plain = await generate();
  assert.equal(plain.text, expected, 'the page without a draft: Node\'s greedy text');
  assert.equal(plain.speculative, undefined);

  const loads = await page.evaluate(() => window.__gpt2.draftLoads);
  await page.selectOption('#draft-select', 'self');
  await page.waitForFunction((k) => window.__gpt2.draftLoads > k, loads, WAIT);
  assert.equal(await page.evaluate(() => window.__gpt2.draftError && window.__gpt2.draftError.message), null);
  assert.match(await page.textContent('#draft-status'), /^Draft ready: Same model in q8_0 \(self-draft\), q8_0, /);
  for (const k of ['4', '2']) {
    await page.fill('#draft-tokens', k);
    const s = await generate();
    assert.equal(s.text, expected, `draftTokens ${k}: the same text`);
    assert.ok(s.speculative && s.speculative.proposed > 0, JSON.stringify(s.speculative));
    assert.ok(s.speculative.accepted <= s.speculative.proposed);
    const pct = Math.round((s.speculative.accepted / s.speculative.proposed) * 100);
    assert.ok(pct > 50, `a q8_0 copy agrees with its model most of the time (${pct}%)`);
    assert.ok((await page.textContent('#stats')).includes(
      `draft accepted ${s.speculative.accepted} of ${s.speculative.proposed} proposed tokens (${pct}%)`), await page.textContent('#stats'));
  }
  await page.screenshot({ path: join(SHOTS, 'bigmodel-draft.png'), fullPage: true });
  // A number of tokens per round outside 1..16 is said, not guessed.
  await page.fill('#draft-tokens', '17');
  await page.click('#generate');
  await page.waitForSelector('#error:not([hidden])', WAIT);
  assert.match(await page.textContent('#error'), /Check the sampling settings\..*Tokens per round must be a whole number from 1 to 16/s);
  await page.fill('#draft-tokens', '4');

  // Sampling with the draft: the core keeps the big model's distribution (tests/unit/test_spec_sampling.c),
  // so the page uses the draft and reports its acceptance.
  await page.fill('#temperature', '0.8');
  await page.fill('#seed', '5');
  const sampled = await generate();
  assert.ok(sampled.tokens > 0);
  assert.ok(sampled.speculative && sampled.speculative.proposed > 0, JSON.stringify(sampled.speculative));
  assert.match(await page.textContent('#stats'), /draft accepted \d+ of \d+ proposed tokens/);

  // Off again: no draft in the summary; the embedded model as a draft also keeps the text.
  await page.fill('#temperature', '0');
  await page.selectOption('#draft-select', 'off');
  assert.equal((await generate()).speculative, undefined);
  const n = await page.evaluate(() => window.__gpt2.draftLoads);
  await page.selectOption('#draft-select', 'embedded');
  await page.waitForFunction((k) => window.__gpt2.draftLoads > k, n, WAIT);
  const emb = await generate();
  assert.equal(emb.text, expected);
  assert.ok(emb.speculative && emb.speculative.proposed > 0);
  await page.selectOption('#draft-select', 'off');
});

test('phone layout: the plan line and the draft controls fit at 390x844', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await plan('hf:openai-community/gpt2-xl');
    await page.evaluate(() => { document.querySelector('#settings').open = true; });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling (${overflow} px)`);
    for (const id of ['#model-plan', '#draft-select', '#draft-tokens']) {
      const box = await page.locator(id).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${id} inside the screen: ${JSON.stringify(box)}`);
    }
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, 'bigmodel-plan-phone.png') });
    await page.locator('#draft-select').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, 'bigmodel-draft-phone.png') });
  } finally {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.selectOption('#model-select', 'embedded');
  }
});
