// Exactness of the WebAssembly build through the JS API: every fixture case against the
// float64 PyTorch reference (tests/fixtures/*/expected.json), and the WASM module against the
// native CLI build/gpt2 (greedy and seeded sampling must give the same text).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { load } from '../../js/index.js';
import { FIXTURES, collect, expected, fixture, maxAbsDiff, native } from './helpers/common.mjs';

const TOL = 1e-4;

for (const name of FIXTURES) {
  test(`${name}: tokenize, logits, score and greedy generation match the float64 reference`, async () => {
    const exp = expected(name);
    const model = await load(fixture(name));
    try {
      assert.equal(model.config.nVocab, exp.vocab_size);
      assert.equal(model.config.nCtx, exp.n_ctx);
      assert.ok(exp.cases.length >= 6, 'fixture has its cases');
      for (const c of exp.cases) {
        const special = !!c.allow_special;
        assert.deepEqual(model.tokenize(c.text, { special }), c.ids, `${c.name}: tokenize`);

        const logits = model.logits(c.ids);
        assert.ok(logits instanceof Float32Array);
        assert.equal(logits.length, exp.vocab_size);
        const d = maxAbsDiff(logits, c.logits_last);
        assert.ok(d <= TOL, `${c.name}: logits_last max diff ${d}`);

        const s = model.score(c.ids);
        assert.equal(s.tokens.length, c.ids.length);
        assert.equal(s.tokens[0].logprob, null);
        assert.equal(s.tokens[0].rank, null);
        assert.deepEqual(s.tokens.map((t) => t.id), c.ids);
        const lps = s.tokens.slice(1).map((t) => t.logprob);
        const dl = lps.length ? maxAbsDiff(lps, c.logprobs) : 0;
        assert.ok(dl <= TOL, `${c.name}: logprobs max diff ${dl}`);
        assert.deepEqual(s.tokens.slice(1).map((t) => t.rank), c.ranks, `${c.name}: ranks`);
        const total = c.logprobs.reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(s.totalLogprob - total) <= TOL * Math.max(1, c.logprobs.length), `${c.name}: totalLogprob`);
        if (c.ids.length > 1) assert.ok(Math.abs(s.perplexity - Math.exp(-total / (c.ids.length - 1))) <= 1e-3 * s.perplexity);

        const r = await collect(model.generate(c.text, { temperature: 0, ignoreEot: true, maxTokens: c.greedy.length, special }));
        assert.deepEqual(r.tokens, c.greedy, `${c.name}: greedy`);
        assert.equal(r.summary.tokens, c.greedy.length);
        assert.equal(r.summary.promptTokens, c.ids.length);
        if (c.greedy.length > 0) {
          const g = model.logits([...c.ids, ...c.greedy.slice(0, -1)]);
          const dg = maxAbsDiff(g, c.greedy_logits_last);
          assert.ok(dg <= TOL, `${c.name}: greedy_logits_last max diff ${dg}`);
        }
      }
    } finally {
      model.dispose();
    }
  });
}

test('ids and text prompts give the same greedy continuation', async () => {
  const c = expected('tiny-f32').cases.find((x) => x.name === 'english');
  const model = await load(fixture('tiny-f32'));
  try {
    const a = await collect(model.generate(c.ids, { temperature: 0, ignoreEot: true, maxTokens: 16 }));
    assert.deepEqual(a.tokens, c.greedy);
  } finally {
    model.dispose();
  }
});

function nativeGenerate(dir, prompt, args) {
  const r = spawnSync(native, ['generate', '--model', dir, '--prompt', prompt, ...args], { timeout: 30000 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout.toString('utf8');
}

const PROMPTS = ['The quick brown fox', 'Hello world', 'In 1999, 42% said:\n\n"yes"', ' a'];

test('WASM == native: greedy generation gives the same text', async (t) => {
  if (!existsSync(native)) return t.skip('build/gpt2 not built (cmake -S . -B build && cmake --build build)');
  for (const name of FIXTURES) {
    const model = await load(fixture(name));
    try {
      for (const prompt of PROMPTS) {
        const want = nativeGenerate(fixture(name), prompt, ['--temperature', '0', '--max-tokens', '20', '--ignore-eot']);
        const r = await collect(model.generate(prompt, { temperature: 0, maxTokens: 20, ignoreEot: true }));
        assert.equal(r.tokens.length, 20);
        assert.equal(prompt + r.summary.text + '\n', want, `${name} ${JSON.stringify(prompt)}`);
      }
    } finally {
      model.dispose();
    }
  }
});

test('WASM == native: seeded sampling (T 0.9, top-k 20, top-p 0.95, seed 7) gives the same text', async (t) => {
  if (!existsSync(native)) return t.skip('build/gpt2 not built (cmake -S . -B build && cmake --build build)');
  const opts = { temperature: 0.9, topK: 20, topP: 0.95, seed: 7, maxTokens: 40, ignoreEot: true };
  for (const name of FIXTURES) {
    const model = await load(fixture(name));
    try {
      for (const prompt of PROMPTS.slice(0, 2)) {
        const want = nativeGenerate(fixture(name), prompt,
          ['--temperature', '0.9', '--top-k', '20', '--top-p', '0.95', '--seed', '7', '--max-tokens', '40', '--ignore-eot']);
        const a = await collect(model.generate(prompt, opts));
        const b = await collect(model.generate(prompt, opts));
        assert.equal(prompt + a.summary.text + '\n', want, `${name} ${JSON.stringify(prompt)}`);
        assert.deepEqual(a.tokens, b.tokens, 'same seed, same tokens within the process');
        // A different seed gives a different sample (40 tokens from a near-flat distribution).
        const c = await collect(model.generate(prompt, { ...opts, seed: 8 }));
        assert.notDeepEqual(c.tokens, a.tokens, 'seed changes the sample');
      }
    } finally {
      model.dispose();
    }
  }
});

test('WASM == native: every sampling option reaches the core, a seed above 2^32 whole', async (t) => {
  if (!existsSync(native)) return t.skip('build/gpt2 not built (cmake -S . -B build && cmake --build build)');
  const seed = 2 ** 40 + 7; // the high word matters: a different sample from seed 7
  const opts = { temperature: 0.8, topK: 30, topP: 0.9, repetitionPenalty: 1.3, seed, maxTokens: 30, ignoreEot: true,
    bannedWords: ['the'], logitBias: { 13: -Infinity, 11: 2.5 } };
  const args = ['--temperature', '0.8', '--top-k', '30', '--top-p', '0.9', '--repetition-penalty', '1.3', '--seed', String(seed),
    '--max-tokens', '30', '--ignore-eot', '--ban', 'the', '--bias', '13=-inf', '--bias', '11=2.5'];
  const model = await load(fixture('tiny-f32'));
  try {
    for (const prompt of PROMPTS.slice(0, 2)) {
      const a = await collect(model.generate(prompt, opts));
      assert.equal(prompt + a.summary.text + '\n', nativeGenerate(fixture('tiny-f32'), prompt, args), JSON.stringify(prompt));
      const low = await collect(model.generate(prompt, { ...opts, seed: 7 }));
      assert.notDeepEqual(low.tokens, a.tokens, 'seed 2^40 + 7 is not seed 7');
    }
  } finally {
    model.dispose();
  }
});
