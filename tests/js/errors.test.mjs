// Bad inputs give clear errors: a Gpt2Error with the right code and a message that says what
// is wrong (bad checkpoints, memory budget, prompts too long, invalid options, token ids out
// of range, use after dispose). A failed load over HTTP also stops the download.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load, Gpt2Error } from '../../js/index.js';
import {
  FILE_NAMES, assertGpt2Error, buildSafetensors, collect, fixture, fixtureBytes, parseSafetensors, tempCheckpoint,
} from './helpers/common.mjs';
import { serveFolder } from './helpers/server.mjs';

const st = fixtureBytes('tiny-f32')['model.safetensors'];
const config = JSON.parse(readFileSync(join(fixture('tiny-f32'), 'config.json'), 'utf8'));

/** Loads a temporary copy of tiny-f32 with edits and expects a Gpt2Error. */
async function loadBroken(edits, code, re) {
  const { dir, cleanup } = tempCheckpoint(edits);
  try {
    return await assertGpt2Error(() => load(dir), code, re);
  } finally {
    cleanup();
  }
}

/** The same files as an object of byte arrays, with edits. */
function objectWith(edits) {
  const b = fixtureBytes('tiny-f32');
  for (const [k, v] of Object.entries(edits)) b[k] = typeof v === 'string' ? new TextEncoder().encode(v) : v;
  return b;
}

/** Waits (up to 3 s) for the server to record how the response for path ended. */
async function outcomeOf(srv, path) {
  for (let i = 0; i < 300; i++) {
    const o = srv.outcomes.find((x) => x.path === path);
    if (o) return o;
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

let model;
let server;
before(async () => {
  model = await load(fixture('tiny-f32'));
  server = await serveFolder(fixture('tiny-f32'));
});
after(async () => {
  model.dispose();
  await server.close();
});

test('missing file in a folder: io error naming the file', async () => {
  for (const f of FILE_NAMES) {
    const err = await loadBroken({ [f]: null }, 'io');
    assert.ok(err.message.includes(f), `${f}: ${err.message}`);
  }
  await assertGpt2Error(() => load('/nonexistent/gpt2/folder'), 'io', /nonexistent\/gpt2\/folder\/config\.json/);
});

test('truncated safetensors: error says the file is truncated', async () => {
  // Cut in the data, in the header, and inside the 8-byte length prefix.
  for (const n of [st.length >> 1, st.length - 1, 100, 5]) {
    const err = await loadBroken({ 'model.safetensors': st.subarray(0, n) }, 'format');
    assert.match(err.message, /model\.safetensors/, err.message);
    assert.match(err.message, /truncat|too small|ends|short|incomplete|unexpected end/i, `cut at ${n}: ${err.message}`);
  }
  // Same through an object of ReadableStream (size unknown: the end is found at finish).
  const b = fixtureBytes('tiny-f32');
  const obj = Object.fromEntries(FILE_NAMES.map((f) => [f, new Blob([b[f]]).stream()]));
  obj['model.safetensors'] = new Blob([st.subarray(0, st.length - 1000)]).stream();
  const err = await assertGpt2Error(() => load(obj), 'format');
  assert.match(err.message, /truncat|ends|short|incomplete|unexpected end/i, err.message);
});

test('safetensors with extra bytes or a garbage header: format error', async () => {
  const longer = new Uint8Array(st.length + 10);
  longer.set(st);
  const e1 = await loadBroken({ 'model.safetensors': longer }, 'format');
  assert.ok(e1.message.length > 10, e1.message);
  const garbage = new Uint8Array(st);
  garbage.fill(0x7b, 8, 40); // '{{{{...' in the JSON header
  await loadBroken({ 'model.safetensors': garbage }, 'format');
  const huge = new Uint8Array(st);
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true); // header length beyond the file
  await loadBroken({ 'model.safetensors': huge }, 'format');
});

test('malformed config.json: format error', async () => {
  const e = await loadBroken({ 'config.json': '{"n_layer": 2, "n_embd": ' }, 'format');
  assert.match(e.message, /config|json/i);
  await assertGpt2Error(() => load(objectWith({ 'config.json': 'not json at all' })), 'format', /config|json/i);
  // Valid JSON with a missing required key.
  const { n_embd, ...noEmbd } = config;
  assert.ok(n_embd);
  const e2 = await assertGpt2Error(() => load(objectWith({ 'config.json': JSON.stringify(noEmbd) })), 'format');
  assert.match(e2.message, /n_embd/);
});

test('unsupported activation (relu): unsupported error naming it', async () => {
  const e = await loadBroken({ 'config.json': JSON.stringify({ ...config, activation_function: 'relu' }) }, 'unsupported');
  assert.match(e.message, /relu/);
  assert.match(e.message, /activation/);
});

test('wrong tensor shape (same byte size): shape error naming the tensor', async () => {
  const { header, data } = parseSafetensors(st);
  const name = 'h.0.attn.c_proj.weight';
  assert.deepEqual(header[name].shape, [64, 64]);
  const h = structuredClone(header);
  h[name].shape = [32, 128];
  const e = await loadBroken({ 'model.safetensors': buildSafetensors(h, data) }, 'shape');
  assert.ok(e.message.includes(name), e.message);
  // A config that disagrees with the weights (n_embd 48 vs 64 in the file).
  const e2 = await loadBroken({ 'config.json': JSON.stringify({ ...config, n_embd: 48, n_head: 4 }) }, 'shape');
  assert.match(e2.message, /\[|shape|expected/i);
  // A missing tensor (renamed: the data layout stays valid).
  const h3 = {};
  for (const [k, v] of Object.entries(header)) h3[k === 'ln_f.weight' ? 'ln_f.weight_renamed' : k] = v;
  const e3 = await loadBroken({ 'model.safetensors': buildSafetensors(h3, data) }, 'shape');
  assert.match(e3.message, /'ln_f\.weight' is missing/);
});

test('bad tokenizer files: error says tokenizer', async () => {
  await assertGpt2Error(() => load(objectWith({ 'vocab.json': '[1, 2' })), 'format', /tokenizer|vocab/i);
});

test('memory budget too small: nomem before the weights are downloaded, download stopped', async () => {
  const e = await assertGpt2Error(() => load(fixture('tiny-f32'), { memoryBudget: 1000 }), 'nomem', /budget/);
  assert.match(e.message, /1000 bytes/);
  // A budget that fits works.
  (await load(fixture('tiny-f32'), { memoryBudget: 64 << 20 })).dispose();
  const events = [];
  await assertGpt2Error(() => load(server.url('slow'), { memoryBudget: 1000, onProgress: (ev) => events.push(ev) }),
    'nomem', /memory budget/);
  // The slow server needs ~500 ms for the weights; nothing of them was fed.
  assert.equal(events.filter((ev) => ev.file === 'model.safetensors').length, 0);
  // The server sees the weights' connection closed early, not the whole file sent.
  const o = await outcomeOf(server, '/slow/model.safetensors');
  assert.ok(o, 'the weights request ended');
  assert.equal(o.outcome, 'closed', `weights download was stopped (sent ${o.bytes} of ${st.length})`);
  assert.ok(o.bytes < st.length);
});

test('format error found mid-download over HTTP: the download is stopped too', async () => {
  const { header, data } = parseSafetensors(st);
  const h = structuredClone(header);
  h['h.0.attn.c_proj.weight'].shape = [32, 128];
  const { dir, cleanup } = tempCheckpoint({ 'model.safetensors': buildSafetensors(h, data) });
  const s2 = await serveFolder(dir);
  try {
    await assertGpt2Error(() => load(s2.url('slow')), 'shape', /c_proj/);
    const o = await outcomeOf(s2, '/slow/model.safetensors');
    assert.ok(o && o.outcome === 'closed', `weights download stopped: ${JSON.stringify(o)}`);
  } finally {
    await s2.close();
    cleanup();
  }
});

test("prompt longer than the context with truncatePrompt 'error': range error", async () => {
  const long = 'hello '.repeat(80); // > 64 tokens
  const g = model.generate(long, { maxTokens: 4, truncatePrompt: 'error' });
  await assertGpt2Error(() => g.next(), 'range', /context/);
  await assert.rejects(g.summary, (e) => e.code === 'range');
  await assertGpt2Error(() => model.score(long), 'range', /context/);
  await assertGpt2Error(() => model.logits(Array(65).fill(10)), 'range');
  // Exactly n_ctx tokens is fine for logits and score.
  assert.equal(model.logits(Array(64).fill(10)).length, 1257);
  assert.equal(model.score(Array(64).fill(10)).tokens.length, 64);
});

test('invalid generate options: arg errors that name the option', () => {
  const bad = [
    [{ topP: 2 }, /topP/],
    [{ topP: 0 }, /topP/],
    [{ temperature: -1 }, /temperature/],
    [{ temperature: NaN }, /temperature/],
    [{ maxTokens: 1.5 }, /maxTokens/],
    [{ maxTokens: -1 }, /maxTokens/],
    [{ seed: -1 }, /seed/],
    [{ seed: 0.5 }, /seed/],
    [{ topK: -3 }, /topK/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty/],
    [{ maxTokens: '5' }, /maxTokens/],
    [{ stop: Array.from({ length: 9 }, (_, i) => `s${i}`) }, /stop/],
    [{ stop: '' }, /stop/],
    [{ stop: ['ok', ''] }, /stop/],
    [{ stop: [5] }, /stop/],
  ];
  for (const [o, re] of bad) {
    let err;
    try {
      model.generate('Hello', o);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof Gpt2Error, `${JSON.stringify(o)} was accepted`);
    assert.equal(err.code, 'arg', JSON.stringify(o));
    assert.match(err.message, re, JSON.stringify(o));
  }
  // 8 stop sequences are allowed.
  assert.doesNotThrow(() => model.generate('Hello', { stop: Array.from({ length: 8 }, (_, i) => `s${i}`) }));
});

test('token ids out of range in logits / detokenize / score / generate: range error', async () => {
  for (const ids of [[1257], [-1], [5, 1.5], [5, NaN]]) {
    await assertGpt2Error(() => model.logits(ids), 'range', /token id/);
    await assertGpt2Error(() => model.detokenize(ids), 'range', /token id/);
    await assertGpt2Error(() => model.score(ids), 'range', /token id/);
    await assertGpt2Error(() => model.generate(ids, { maxTokens: 1 }).next(), 'range', /token id/);
  }
  await assertGpt2Error(() => model.logits([]), 'arg');
  await assertGpt2Error(() => model.score(''), 'arg');
  await assertGpt2Error(() => model.detokenize('1 2'), 'arg');
  await assertGpt2Error(() => model.tokenize(42), 'arg');
  // The edges are fine.
  assert.equal(model.logits([0, 1256]).length, 1257);
  assert.equal(model.detokenize([]), '');
});

test('use after dispose: arg error; dispose twice is safe; a running generation fails', async () => {
  const m = await load(fixture('tiny-f32'));
  const g = m.generate('Hello', { maxTokens: 10, temperature: 0, ignoreEot: true });
  const first = await g.next();
  assert.equal(first.done, false);
  m.dispose();
  m.dispose();
  await assertGpt2Error(() => g.next(), 'arg', /disposed/);
  await assert.rejects(g.summary, /disposed/);
  for (const fn of [() => m.tokenize('a'), () => m.detokenize([1]), () => m.logits([1]), () => m.score('a b'),
    () => m.generate('a')]) {
    await assertGpt2Error(fn, 'arg', /disposed/);
  }
  // Other models are unaffected.
  const r = await collect(model.generate('Hello', { maxTokens: 3, temperature: 0 }));
  assert.equal(r.summary.tokens, 3);
});
