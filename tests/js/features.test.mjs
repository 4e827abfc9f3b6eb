// The writing-tool API (issue 7) through the JS API: scoring with alternatives and exact
// token texts, zero-shot ranking, sessions (append, generate, fork, rewind, computed-token
// counts, disposal) and logit controls (logitBias, bannedWords). Expected values come from
// the float64 reference: tests/fixtures/*/expected_score.json
// (/usr/bin/python3 tools/gpt2_reference.py features --out tests/fixtures).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from '../../js/index.js';
import { FIXTURES, assertGpt2Error, collect, expected, fixture } from './helpers/common.mjs';

const TOL = 1e-4;
const features = (name) => JSON.parse(readFileSync(join(fixture(name), 'expected_score.json'), 'utf8'));
const greedy = { temperature: 0, ignoreEot: true };

/** Asserts a top-k list equals the reference's, allowing swaps between near-equal entries. */
function assertTopK(got, wantIds, wantLps, where) {
  assert.equal(got.length, wantIds.length, `${where}: number of alternatives`);
  for (let j = 0; j < wantIds.length; j++) {
    const q = wantIds.indexOf(got[j].id);
    const tie = q >= 0 && Math.abs(wantLps[q] - wantLps[j]) < 1e-5;
    assert.ok(got[j].id === wantIds[j] || tie, `${where}: alternative ${j} is ${got[j].id}, want ${wantIds[j]}`);
    assert.ok(Math.abs(got[j].logprob - wantLps[j]) <= TOL, `${where}: alternative ${j} logprob`);
  }
}

for (const name of FIXTURES) {
  test(`${name}: score() log-probabilities, ranks, alternatives and token texts match the reference`, async () => {
    const exp = features(name);
    const model = await load(fixture(name));
    try {
      assert.ok(exp.score.length >= 6);
      for (const c of exp.score) {
        const special = !!c.allow_special;
        const s = model.score(c.text, { special, topK: exp.top_k });
        assert.deepEqual(s.tokens.map((t) => t.id), c.ids, `${c.name}: ids`);
        assert.deepEqual(s.tokens.map((t) => t.text), c.token_texts, `${c.name}: token texts`);
        assert.equal(s.tokens.map((t) => t.text).join(''), c.text, `${c.name}: texts join to the input`);
        assert.equal(s.tokens[0].logprob, null);
        assert.equal(s.tokens[0].rank, null);
        assert.deepEqual(s.tokens[0].alternatives, []);
        let total = 0;
        c.positions.forEach((p, i) => {
          const t = s.tokens[i + 1];
          const where = `${name}/${c.name}[${i + 1}]`;
          assert.ok(Math.abs(t.logprob - p.logprob) <= TOL, `${where}: logprob ${t.logprob} vs ${p.logprob}`);
          assert.equal(t.rank, p.rank, `${where}: rank`);
          assertTopK(t.alternatives, p.top_ids, p.top_logprobs, where);
          for (const a of t.alternatives) assert.equal(a.text, model.detokenize([a.id]));
          total += p.logprob;
        });
        assert.ok(Math.abs(s.totalLogprob - total) <= TOL * c.positions.length, `${c.name}: totalLogprob`);
      }
    } finally {
      model.dispose();
    }
  });

  test(`${name}: rank() matches the reference's sums and order`, async () => {
    const exp = features(name);
    const model = await load(fixture(name));
    try {
      for (const r of exp.rank) {
        const choices = r.choices.map((c) => c.choice);
        for (const by of ['mean', 'sum']) {
          const got = model.rank(r.prompt, choices, { by });
          assert.equal(got.length, choices.length);
          for (const g of got) {
            const want = r.choices[g.index];
            assert.equal(g.choice, want.choice);
            assert.equal(g.tokens, want.scored.length, `${r.name}/${g.choice}: tokens`);
            assert.ok(Math.abs(g.logprob - want.logprob) <= TOL * want.scored.length, `${r.name}/${g.choice}: logprob`);
            assert.ok(Math.abs(g.meanLogprob - want.mean_logprob) <= TOL, `${r.name}/${g.choice}: meanLogprob`);
          }
          const key = by === 'mean' ? 'mean_logprob' : 'logprob';
          const order = [...r.choices].sort((a, b) => b[key] - a[key] || a.index - b.index).map((c) => c.index);
          assert.deepEqual(got.map((g) => g.index), order, `${r.name}: order by ${by}`);
        }
      }
      await assertGpt2Error(() => model.rank('a', []), 'arg');
      await assertGpt2Error(() => model.rank('a', ['b'], { by: 'max' }), 'arg', /mean/);
      await assertGpt2Error(() => model.rank('a b', ['']), 'arg', /adds no tokens/);
      assert.equal(model.sessions.size, 0, 'rank() leaves no session behind');
    } finally {
      model.dispose();
    }
  });

  test(`${name}: logitBias and bannedWords give the reference's greedy continuations`, async () => {
    const exp = features(name);
    const model = await load(fixture(name));
    try {
      assert.ok(exp.bans.length >= 4);
      for (const c of exp.bans) {
        const opts = { ...greedy, maxTokens: c.greedy.length };
        if (c.logit_bias) {
          opts.logitBias = Object.fromEntries(Object.entries(c.logit_bias).map(([k, v]) => [k, v === '-Infinity' ? -Infinity : v]));
        }
        if (c.banned_words) opts.bannedWords = c.banned_words;
        const r = await collect(model.generate(c.ids, opts));
        assert.deepEqual(r.tokens, c.greedy, `${c.name}`);
        // Without the controls: the plain reference continuation.
        const plain = await collect(model.generate(c.ids, { ...greedy, maxTokens: c.plain.length }));
        assert.deepEqual(plain.tokens, c.plain, `${c.name}: plain`);
        if (c.logit_bias && Object.values(c.logit_bias)[0] === '-Infinity') {
          // Identical up to the first step where the plain argmax was the banned token, then different.
          const banned = Number(Object.keys(c.logit_bias)[0]);
          const at = c.plain.indexOf(banned);
          assert.ok(at >= 0);
          assert.deepEqual(r.tokens.slice(0, at), c.plain.slice(0, at));
          assert.notEqual(r.tokens[at], banned);
          assert.ok(!r.tokens.includes(banned));
        }
      }
    } finally {
      model.dispose();
    }
  });
}

let model;
before(async () => { model = await load(fixture('tiny-f32')); });
after(() => model.dispose());

test('score: multi-byte characters keep their exact text; topK 0 and validation', () => {
  const text = 'Café ☕ naïve 日本語 😀!';
  const s = model.score(text);
  assert.equal(s.tokens.map((t) => t.text).join(''), text);
  assert.ok(!s.tokens.some((t) => t.text.includes('\uFFFD')), 'no U+FFFD in token texts');
  assert.ok(s.tokens.some((t) => t.text === ''), 'leading bytes of split characters have empty text');
  assert.ok(s.tokens.every((t, i) => i === 0 || t.alternatives.length === 5), 'default topK is 5');
  const s0 = model.score(text, { topK: 0 });
  assert.ok(s0.tokens.every((t) => t.alternatives.length === 0));
  assert.deepEqual(s0.tokens.map((t) => t.logprob), s.tokens.map((t) => t.logprob));
  // The first alternative is the top choice: rank 0 exactly when the token is alternatives[0].
  for (const t of s.tokens.slice(1)) assert.equal(t.rank === 0, t.alternatives[0].id === t.id);
  // Ids input: token texts join to detokenize(ids), even for a cut character.
  const ids = model.tokenize('né').slice(0, -1);
  assert.equal(model.score(ids).tokens.map((t) => t.text).join(''), model.detokenize(ids));
  assert.throws(() => model.score('abc', { topK: -1 }), /topK/);
  assert.throws(() => model.score('abc', { topK: 1.5 }), /topK/);
});

test('rank: a sentiment example resolves to choices sorted best first', () => {
  const r = model.rank('Review: a wonderful, moving film. Sentiment:', [' positive', ' negative']);
  assert.equal(r.length, 2);
  assert.ok(r[0].meanLogprob >= r[1].meanLogprob);
  assert.deepEqual(r.map((x) => x.index).sort(), [0, 1]);
  for (const x of r) assert.ok(x.logprob < 0 && x.tokens >= 1 && Math.abs(x.meanLogprob - x.logprob / x.tokens) < 1e-12);
});

test('session: append computes only new tokens; generate continues it like one long generation', async () => {
  const prompt = 'The quick brown fox jumps over the lazy dog.';
  const ids = model.tokenize(prompt);
  const one = await collect(model.generate(prompt, { ...greedy, maxTokens: 20 }));

  const s = model.session();
  assert.equal(s.position, 0);
  assert.deepEqual(s.append(prompt), ids);
  assert.equal(s.computedTokens, ids.length);
  assert.equal(s.position, ids.length);
  const a = await collect(s.generate({ ...greedy, maxTokens: 10 }));
  assert.equal(a.summary.promptTokens, ids.length);
  assert.equal(s.position, ids.length + 10);
  assert.equal(s.computedTokens, ids.length + 9, 'the last generated token waits for the next call');
  const b = await collect(s.generate({ ...greedy, maxTokens: 10 }));
  assert.equal(b.summary.promptTokens, ids.length + 10);
  assert.equal(s.computedTokens, ids.length + 19, 'second call: 10 tokens, whatever the history');
  assert.deepEqual([...a.tokens, ...b.tokens], one.tokens);
  assert.deepEqual(s.tokens, [...ids, ...one.tokens]);
  assert.equal(s.text, prompt + one.text);

  // append: the cost is the new tokens (+ the pending one), not the history.
  const before = s.computedTokens;
  const added = s.append(' And then');
  assert.equal(s.computedTokens - before, added.length + 1);
  const before2 = s.computedTokens;
  s.append([11, 12, 13]);
  assert.equal(s.computedTokens - before2, 3);
  s.dispose();
  assert.equal(s.disposed, true);
  assert.throws(() => s.position, /disposed/);
  s.dispose(); // twice is fine
});

test('session: fork copies the cache; rewind forgets; both continue exactly', async () => {
  const s = model.session();
  s.append('Once upon a time, there was');
  const base = s.tokens;
  const f = s.fork();
  assert.deepEqual(f.tokens, base);
  assert.equal(f.computedTokens, 0, 'a fork computes nothing');
  const x = await collect(f.generate({ ...greedy, maxTokens: 8 }));
  assert.equal(f.computedTokens, 7);
  assert.deepEqual(s.tokens, base, 'the original is unchanged');
  const y = await collect(s.generate({ ...greedy, maxTokens: 8 }));
  assert.deepEqual(x.tokens, y.tokens);
  const fresh = await collect(model.generate(base, { ...greedy, maxTokens: 8 }));
  assert.deepEqual(x.tokens, fresh.tokens);

  // Sampled continuation from a fork == the same seed on a fresh generation.
  const g = s.fork();
  g.rewind(base.length);
  const sampled = await collect(g.generate({ temperature: 0.9, seed: 5, maxTokens: 12, ignoreEot: true }));
  const direct = await collect(model.generate(base, { temperature: 0.9, seed: 5, maxTokens: 12, ignoreEot: true }));
  assert.deepEqual(sampled.tokens, direct.tokens);
  assert.equal(g.computedTokens, 1 + 11, 'rewind recomputes one token');

  s.rewind(3);
  assert.deepEqual(s.tokens, base.slice(0, 3));
  assert.throws(() => s.rewind(10), /rewind/);
  assert.throws(() => s.rewind(-1), /rewind/);
  s.rewind(0);
  assert.equal(s.position, 0);
  assert.equal(s.text, '');
  const empty = await collect(s.generate({ ...greedy, maxTokens: 4 }));
  const unconditional = await collect(model.generate('', { ...greedy, maxTokens: 4 }));
  assert.deepEqual(empty.tokens, unconditional.tokens);
  assert.equal(s.tokens[0], model.eotId);
  for (const t of [s, f, g]) t.dispose();
});

test('session: errors, one generation at a time, cancel keeps the tokens, disposed with the model', async () => {
  const m = await load(fixture('tiny-f32'));
  const s = m.session();
  s.append('Hello there');
  await assertGpt2Error(() => s.append([99999]), 'range', /vocabulary/);
  await assertGpt2Error(() => s.append(Array(70).fill(5)), 'range', /context/);
  assert.equal(s.position, m.tokenize('Hello there').length, 'failed appends change nothing');
  const gen = s.generate({ ...greedy, maxTokens: 20 });
  const it = gen[Symbol.asyncIterator]();
  await it.next();
  await assertGpt2Error(() => s.append('x'), 'arg', /generation is running/);
  await assertGpt2Error(() => s.fork(), 'arg', /generation is running/);
  await it.next();
  await it.return();
  assert.equal((await gen.summary).stopReason, 'cancelled');
  assert.equal(s.position, m.tokenize('Hello there').length + 2, 'the generated tokens stay');
  s.append('!'); // usable again
  const t = m.session();
  const running = t.generate({ ...greedy, maxTokens: 5 });
  await running.next();
  m.dispose();
  assert.equal(s.disposed, true);
  assert.equal(t.disposed, true);
  assert.equal(m.sessions.size, 0);
  await assertGpt2Error(() => s.append('x'), 'arg', /disposed/);
  assert.equal((await running.summary).stopReason, 'cancelled');
});

test('logitBias: a huge bias forces a token; -Infinity bans; validation', async () => {
  const forced = model.tokenize(' the')[0];
  const r = await collect(model.generate('Hello', { temperature: 1, seed: 3, maxTokens: 30, ignoreEot: true, logitBias: { [forced]: 1e9 } }));
  assert.deepEqual(r.tokens, Array(30).fill(forced));
  // Ban the whole top of the distribution at each step: sampling never produces them.
  const plain = await collect(model.generate('Hello', { temperature: 1, seed: 3, maxTokens: 50, ignoreEot: true }));
  const banned = [...new Set(plain.tokens)].slice(0, 10);
  const logitBias = Object.fromEntries(banned.map((id) => [id, -Infinity]));
  const b = await collect(model.generate('Hello', { temperature: 1, seed: 3, maxTokens: 50, ignoreEot: true, logitBias }));
  assert.ok(!b.tokens.some((t) => banned.includes(t)));
  const m = new Map([[forced, 1e9]]);
  assert.deepEqual((await collect(model.generate('Hi', { ...greedy, maxTokens: 3, logitBias: m }))).tokens, Array(3).fill(forced));
  await assertGpt2Error(() => model.generate('a', { logitBias: { 5: Infinity } }), 'arg', /finite/);
  await assertGpt2Error(() => model.generate('a', { logitBias: { 5: NaN } }), 'arg', /finite/);
  await assertGpt2Error(() => model.generate('a', { logitBias: { 99999: -1 } }), 'range', /vocabulary/);
  await assertGpt2Error(() => model.generate('a', { logitBias: [1, 2] }), 'arg');
  await assertGpt2Error(() => model.generate('a', { bannedWords: [''] }), 'arg');
});

/** Occurrences of word at a word start in text (the rule of src/generate.h, on characters). */
function wordStarts(text, word) {
  let n = 0;
  for (let at = text.indexOf(word); at >= 0; at = text.indexOf(word, at + 1)) {
    if (at === 0 || !/[A-Za-z0-9\u0080-\uFFFF]/.test(text[at - 1])) n++;
  }
  return n;
}

test('bannedWords: never produced in hundreds of sampled tokens (also from a session)', async () => {
  // Control run: find words the model does produce with these settings, then ban them.
  const opts = (seed) => ({ temperature: 1.2, seed, maxTokens: 56, ignoreEot: true });
  const control = [];
  for (let seed = 1; seed <= 8; seed++) control.push((await collect(model.generate('Once upon a', opts(seed)))).text);
  const counts = new Map();
  for (const t of control) for (const w of t.match(/(?<![A-Za-z0-9])[A-Za-z]{2,}/g) || []) counts.set(w, (counts.get(w) || 0) + 1);
  const words = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([w]) => w);
  assert.ok(words.length === 3, 'the control produces words');
  const seen = words.reduce((n, w) => n + control.reduce((k, t) => k + wordStarts(t, w), 0), 0);
  assert.ok(seen >= 6, `control: the words appear ${seen} times`);
  let tokens = 0;
  for (let seed = 1; seed <= 8; seed++) {
    const r = await collect(model.generate('Once upon a', { ...opts(seed), bannedWords: words }));
    tokens += r.tokens.length;
    for (const w of words) assert.equal(wordStarts(r.text, w), 0, `seed ${seed}: '${w}' in ${JSON.stringify(r.text)}`);
  }
  assert.ok(tokens >= 400, `${tokens} tokens sampled`);
  // A word already begun in the session is not completed.
  const s = model.session();
  const word = words[0];
  s.append(` ${word.slice(0, -1)}`);
  const cont = await collect(s.generate({ temperature: 1, seed: 2, maxTokens: 30, ignoreEot: true, bannedWords: [word],
    logitBias: Object.fromEntries(model.tokenize(word.slice(-1) + ' x').slice(0, 1).map((id) => [id, 20])) }));
  assert.equal(wordStarts(s.text, word), 0, JSON.stringify(s.text));
  assert.ok(cont.tokens.length === 30);
  s.dispose();
});
