// Generation policies through the JS API: stop sequences, maxTokens 0, the empty prompt,
// the context filling up, eot, pieces == detokenize(tokens) == summary.text, and aborting
// or breaking out of a generation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { load } from '../../js/index.js';
import { assertAbortError, collect, expected, fixture } from './helpers/common.mjs';

const exp = expected('tiny-f32');
const byName = (n) => exp.cases.find((c) => c.name === n);
const greedy = { temperature: 0, ignoreEot: true };
let model;
before(async () => { model = await load(fixture('tiny-f32')); });
after(() => model.dispose());

test('pieces concatenated == detokenize(tokens) == summary.text, summary counts', async () => {
  for (const opts of [{ ...greedy, maxTokens: 30 }, { temperature: 1, seed: 3, maxTokens: 40, ignoreEot: true },
    { temperature: 0.8, topK: 5, repetitionPenalty: 1.3, seed: 1, maxTokens: 30, ignoreEot: true }]) {
    const prompt = 'The quick brown fox';
    const r = await collect(model.generate(prompt, opts));
    assert.equal(r.summary.stopReason, 'max_tokens');
    assert.equal(r.summary.tokens, opts.maxTokens);
    assert.equal(r.tokens.length, opts.maxTokens);
    assert.equal(r.summary.promptTokens, model.tokenize(prompt).length);
    assert.equal(r.text, r.summary.text);
    assert.equal(r.text, model.detokenize(r.tokens));
    assert.ok(r.tokens.every((t) => Number.isInteger(t) && t >= 0 && t < 1257));
    const tm = r.summary.timings;
    assert.ok(tm.totalMs >= tm.firstTokenMs && tm.firstTokenMs >= 0);
  }
});

test('greedy continuation of the fixture, and a repeated generation is identical', async () => {
  const c = byName('english');
  const a = await collect(model.generate(c.text, { ...greedy, maxTokens: 16 }));
  const b = await collect(model.generate(c.text, { ...greedy, maxTokens: 16 }));
  assert.deepEqual(a.tokens, c.greedy);
  assert.deepEqual(b.tokens, c.greedy);
});

test('stop sequence: text before the stop only, stopReason stop_sequence', async () => {
  const c = byName('english');
  const full = await collect(model.generate(c.text, { ...greedy, maxTokens: 16 }));
  // Pick a stop string that starts in the middle of the greedy text (not at a token boundary).
  const text = full.text;
  assert.ok(text.length > 12, JSON.stringify(text));
  const at = Math.floor(text.length / 2);
  const stop = text.slice(at, at + 3);
  const first = text.indexOf(stop);
  const r = await collect(model.generate(c.text, { ...greedy, maxTokens: 16, stop }));
  assert.equal(r.summary.stopReason, 'stop_sequence');
  assert.equal(r.summary.text, text.slice(0, first));
  assert.equal(r.text, r.summary.text, 'pieces never contain the stop text');
  assert.ok(!r.text.includes(stop));
  // Several stops: the earliest in the text wins.
  const other = text.slice(first + 1, first + 4);
  const r2 = await collect(model.generate(c.text, { ...greedy, maxTokens: 16, stop: ['zzzz-never', other, stop] }));
  assert.equal(r2.summary.stopReason, 'stop_sequence');
  assert.equal(r2.summary.text, text.slice(0, Math.min(first, text.indexOf(other))));
  // A stop that never appears changes nothing.
  const r3 = await collect(model.generate(c.text, { ...greedy, maxTokens: 16, stop: 'zzzz-never' }));
  assert.equal(r3.summary.stopReason, 'max_tokens');
  assert.equal(r3.summary.text, text);
});

test('maxTokens 0: no pieces, stopReason max_tokens', async () => {
  const r = await collect(model.generate('Hello world', { maxTokens: 0 }));
  assert.deepEqual(r.pieces, []);
  assert.equal(r.summary.tokens, 0);
  assert.equal(r.summary.text, '');
  assert.equal(r.summary.stopReason, 'max_tokens');
  assert.equal(r.summary.promptTokens, model.tokenize('Hello world').length);
});

test('empty prompt starts from <|endoftext|>', async () => {
  const a = await collect(model.generate('', { ...greedy, maxTokens: 8 }));
  const b = await collect(model.generate([exp.eot_id], { ...greedy, maxTokens: 8 }));
  const c = await collect(model.generate([], { ...greedy, maxTokens: 8 }));
  assert.equal(a.summary.promptTokens, 1);
  assert.equal(a.tokens.length, 8);
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(c.tokens, b.tokens);
  // And it equals the argmax of the logits after <|endoftext|>.
  const l = model.logits([exp.eot_id]);
  assert.equal(a.tokens[0], l.indexOf(Math.max(...l)));
});

test("contextPolicy 'stop': stopReason context_full after exactly n_ctx tokens", async () => {
  const stop = { ...greedy, contextPolicy: 'stop' };
  const c4 = byName('ctx_minus_4');
  const r = await collect(model.generate(c4.ids, { ...stop, maxTokens: 50 }));
  assert.deepEqual(r.tokens, c4.greedy);
  assert.equal(r.summary.stopReason, 'context_full');
  assert.equal(r.summary.tokens, 4);
  assert.equal(r.summary.promptTokens + r.summary.tokens, exp.n_ctx);
  // A full prompt: nothing can be generated.
  const full = byName('fill_ctx');
  const r2 = await collect(model.generate(full.ids, { ...stop, maxTokens: 5 }));
  assert.equal(r2.tokens.length, 0);
  assert.equal(r2.summary.stopReason, 'context_full');
  // From the empty prompt: n_ctx - 1 new tokens.
  const r3 = await collect(model.generate('', { ...stop, maxTokens: 1000 }));
  assert.equal(r3.summary.tokens, exp.n_ctx - 1);
  assert.equal(r3.summary.stopReason, 'context_full');
  assert.equal(r3.text, model.detokenize(r3.tokens));
});

test('<|endoftext|> ends the generation unless ignoreEot', async () => {
  // Find a seed whose sample contains eot (the tiny model gives it some probability).
  let found = null;
  for (let seed = 0; seed < 300 && !found; seed++) {
    const r = await collect(model.generate('', { temperature: 2, seed, maxTokens: 20, ignoreEot: true }));
    const k = r.tokens.indexOf(exp.eot_id);
    if (k >= 0) found = { seed, k, tokens: r.tokens };
  }
  assert.ok(found, 'some seed samples <|endoftext|> within 20 tokens');
  const r = await collect(model.generate('', { temperature: 2, seed: found.seed, maxTokens: 20 }));
  assert.equal(r.summary.stopReason, 'eot');
  // The pieces are the sampled tokens up to the eot; the eot itself is reported as a last
  // piece with empty text (and counted in summary.tokens), its text never appears.
  const before = r.tokens.filter((t) => t !== exp.eot_id);
  assert.deepEqual(before, found.tokens.slice(0, found.k), 'same tokens as with ignoreEot, up to the eot');
  assert.ok(r.tokens.length <= found.k + 1, 'nothing after the eot');
  for (const p of r.pieces) if (p.token === exp.eot_id) assert.equal(p.text, '');
  assert.equal(r.summary.text, model.detokenize(found.tokens.slice(0, found.k)));
  assert.ok(!r.summary.text.includes('<|endoftext|>'));
});

test('special: <|endoftext|> in the prompt is one token only with special', async () => {
  const c = byName('special_eot');
  const a = await collect(model.generate(c.text, { ...greedy, maxTokens: 2, special: true }));
  const b = await collect(model.generate(c.text, { ...greedy, maxTokens: 2 }));
  assert.equal(a.summary.promptTokens, c.ids.length);
  assert.ok(b.summary.promptTokens > a.summary.promptTokens);
  assert.deepEqual(model.tokenize('<|endoftext|>', { special: true }), [exp.eot_id]);
  assert.notDeepEqual(model.tokenize('<|endoftext|>'), [exp.eot_id]);
});

test('abort during generation: the iterator throws AbortError after 3 pieces, summary rejects', async () => {
  const ac = new AbortController();
  const g = model.generate('Hello', { ...greedy, maxTokens: 50, signal: ac.signal });
  const seen = [];
  const err = await assertAbortError(async () => {
    for await (const p of g) {
      seen.push(p);
      if (seen.length === 3) ac.abort();
    }
  });
  assert.equal(seen.length, 3, 'no piece after the abort');
  await assert.rejects(g.summary, (e) => e === err);
  // The iterator is finished; the model still works.
  assert.deepEqual(await g.next(), { done: true, value: undefined });
  const r = await collect(model.generate('Hello', { ...greedy, maxTokens: 5 }));
  assert.equal(r.summary.tokens, 5);
});

test('abort from a timer while generating (the loop yields to the event loop)', async () => {
  const ac = new AbortController();
  const g = model.generate('', { temperature: 1, seed: 1, ignoreEot: true, maxTokens: 63, signal: ac.signal });
  let n = 0;
  setImmediate(() => ac.abort());
  await assertAbortError(async () => { for await (const _ of g) n++; });
  assert.ok(n < 63, `stopped early (${n} pieces)`);
  await assert.rejects(g.summary, { name: 'AbortError' });
});

test('already aborted signal: generation throws AbortError at once', async () => {
  const ac = new AbortController();
  ac.abort();
  const g = model.generate('Hello', { maxTokens: 5, signal: ac.signal });
  await assertAbortError(() => g.next());
  await assert.rejects(g.summary, { name: 'AbortError' });
});

test('break out of for-await: summary resolves with stopReason cancelled', async () => {
  const g = model.generate('Hello', { ...greedy, maxTokens: 50 });
  const pieces = [];
  for await (const p of g) {
    pieces.push(p);
    if (pieces.length === 4) break;
  }
  const s = await g.summary;
  assert.equal(s.stopReason, 'cancelled');
  assert.equal(s.tokens, 4);
  assert.equal(s.text, pieces.map((p) => p.text).join(''));
  assert.deepEqual(await g.next(), { done: true, value: undefined });
  // The same four tokens as an uninterrupted run.
  const full = await collect(model.generate('Hello', { ...greedy, maxTokens: 4 }));
  assert.deepEqual(pieces.map((p) => p.token), full.tokens);
});

test('two generations interleaved on one model are independent', async () => {
  const a = model.generate('Hello', { ...greedy, maxTokens: 10 });
  const b = model.generate('The quick', { ...greedy, maxTokens: 10 });
  const ta = [], tb = [];
  for (let i = 0; i < 10; i++) {
    ta.push((await a.next()).value.token);
    tb.push((await b.next()).value.token);
  }
  assert.deepEqual(ta, (await collect(model.generate('Hello', { ...greedy, maxTokens: 10 }))).tokens);
  assert.deepEqual(tb, (await collect(model.generate('The quick', { ...greedy, maxTokens: 10 }))).tokens);
  await a.next();
  await b.next();
  assert.equal((await a.summary).stopReason, 'max_tokens');
});

test("contextPolicy 'slide' (the default): generation goes past the context, keeping the recent tokens", async () => {
  const c4 = byName('ctx_minus_4');
  const n = exp.n_ctx;
  for (const slideKeep of [0, 20]) {
    const keep = slideKeep || n / 2;
    const r = await collect(model.generate(c4.ids, { ...greedy, maxTokens: 10, slideKeep }));
    assert.equal(r.summary.stopReason, 'max_tokens');
    assert.equal(r.summary.tokens, 10);
    assert.equal(r.summary.slides, 1, 'one slide: 60 + 4 tokens fill the context, 6 more fit after');
    // Up to the boundary: exactly the float64 reference.
    assert.deepEqual(r.tokens.slice(0, 4), c4.greedy);
    // After it: what the model continues from the last `keep` tokens alone, at positions 0..keep-1.
    const kept = [...c4.ids, ...r.tokens.slice(0, 4)].slice(-keep);
    const fresh = await collect(model.generate(kept, { ...greedy, maxTokens: 6, contextPolicy: 'stop' }));
    assert.deepEqual(r.tokens.slice(4), fresh.tokens);
    assert.equal(r.text, model.detokenize(r.tokens));
  }
  // Long generations slide repeatedly (every n/2 tokens) and never fail.
  const long = await collect(model.generate('', { ...greedy, maxTokens: 3 * n }));
  assert.equal(long.summary.tokens, 3 * n);
  assert.equal(long.summary.slides, Math.floor((1 + 3 * n - n) / (n / 2)) + 1);
});

test('a prompt longer than the context is truncated from the left, with a warning', async () => {
  const c4 = byName('ctx_minus_4'); // 60 tokens; with maxTokens 4 exactly 60 are kept
  const junk = Array(10).fill(c4.ids[0]);
  const r = await collect(model.generate([...junk, ...c4.ids], { ...greedy, maxTokens: 4 }));
  assert.equal(r.summary.truncatedTokens, 10);
  assert.equal(r.summary.promptTokens, 60);
  assert.match(r.summary.warnings[0], /first 10 tokens were dropped/);
  assert.deepEqual(r.tokens, c4.greedy, 'the truncated prompt continues as the reference');
  // Asked for: a range error instead.
  const g = model.generate([...junk, ...c4.ids], { ...greedy, maxTokens: 4, truncatePrompt: 'error' });
  await assert.rejects(() => g.next(), (e) => e.code === 'range' && /context/.test(e.message));
  // A prompt that fits is not touched.
  const ok = await collect(model.generate(c4.ids, { ...greedy, maxTokens: 4 }));
  assert.equal(ok.summary.truncatedTokens, 0);
  assert.deepEqual(ok.summary.warnings, []);
});
