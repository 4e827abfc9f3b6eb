// Speculative decoding through the JS API and the CLI: generate(prompt, { draft, draftTokens })
// gives the float64 reference's greedy tokens (tests/fixtures/tiny-f32 expected.json) and
// the plain greedy text, with a q8_0 self-draft (load(dir, { into: model })), an f16 copy and
// a different model (tiny-bf16); summary.speculative's counts; sampling with a draft (a seed
// fixes the text; the distribution itself is tested in tests/unit/test_spec_sampling.c);
// load(dir, { draft, draftTokens }) as the default draft; clear errors for a draft in another
// instance, another vocabulary, bad draftTokens; `gpt2-wasm generate --draft`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { load } from '../../js/index.js';
import { collect, expected, fixture, root } from './helpers/common.mjs';

const exp = expected('tiny-f32');
let model, drafts, separate;
before(async () => {
  model = await load(fixture('tiny-f32'));
  drafts = {
    'q8_0 self': await load(fixture('tiny-f32'), { precision: 'q8_0', into: model }),
    'tiny-f16': await load(fixture('tiny-f16'), { into: model }),
    'tiny-bf16': await load(fixture('tiny-bf16'), { into: model }),
  };
  separate = await load(fixture('tiny-f32'), { precision: 'q8_0' });
});
after(() => { model.dispose(); separate.dispose(); });

test('greedy with a draft == the float64 reference greedy tokens, for k = 1..8', async () => {
  let runs = 0;
  for (const c of exp.cases.filter((x) => x.greedy.length > 0)) {
    for (const [name, draft] of Object.entries(drafts)) {
      for (let k = 1; k <= 8; k++) {
        const r = await collect(model.generate(c.ids, { temperature: 0, ignoreEot: true, maxTokens: 16, contextPolicy: 'stop', draft, draftTokens: k }));
        assert.deepEqual(r.tokens, c.greedy, `${c.name}, draft ${name}, k ${k}`);
        const s = r.summary.speculative;
        assert.ok(s.accepted >= 0 && s.accepted <= s.proposed && s.accepted < r.summary.tokens, `${name} k ${k}: ${JSON.stringify(s)}`);
        assert.equal(s.rate, s.proposed ? s.accepted / s.proposed : null);
        runs++;
      }
    }
  }
  assert.equal(runs, 5 * 3 * 8);
});

test('the model drafting for itself accepts every proposal', async () => {
  const r = await collect(model.generate('The quick brown fox', { temperature: 0, ignoreEot: true, maxTokens: 21, draft: model, draftTokens: 4 }));
  // 21 tokens = 4 rounds of 4 accepted + 1 own token, then one round of 1 token (0 proposed).
  assert.deepEqual(r.summary.speculative, { proposed: 16, accepted: 16, rate: 1 });
});

test('the embedded model with a q8_0 self-draft: text == plain greedy, in a session too', async () => {
  const big = await load();
  try {
    const draft = await load(undefined, { precision: 'q8_0', into: big });
    for (const prompt of ['It is a truth universally acknowledged', 'Elizabeth']) {
      const plain = await collect(big.generate(prompt, { temperature: 0, maxTokens: 60 }));
      for (const k of [1, 3, 8]) {
        const spec = await collect(big.generate(prompt, { temperature: 0, maxTokens: 60, draft, draftTokens: k }));
        assert.equal(spec.text, plain.text, `k ${k}`);
        assert.deepEqual(spec.tokens, plain.tokens);
        assert.equal(spec.summary.stopReason, plain.summary.stopReason);
        assert.ok(spec.summary.speculative.rate > 0.5, `q8_0 self-draft acceptance ${spec.summary.speculative.rate}`);
      }
    }
    const a = big.session(), b = big.session();
    for (const turn of ['Mr. Darcy said', ' and then']) {
      a.append(turn);
      b.append(turn);
      const ra = await collect(a.generate({ temperature: 0, maxTokens: 12, stop: ['.'] }));
      const rb = await collect(b.generate({ temperature: 0, maxTokens: 12, stop: ['.'], draft, draftTokens: 5 }));
      assert.equal(rb.text, ra.text);
      assert.deepEqual(b.tokens, a.tokens);
    }
    assert.equal(big.guests.size, 1);
  } finally {
    big.dispose();
  }
});

test('bad draft options are refused clearly', async () => {
  const draft = drafts['q8_0 self'];
  assert.throws(() => model.generate('a', { temperature: 0, draft, draftTokens: 17 }), (e) => e.code === 'arg' && /1 to 16/.test(e.message));
  assert.throws(() => model.generate('a', { temperature: 0, draft, draftTokens: 0 }), (e) => e.code === 'arg' && /1 to 16/.test(e.message));
  assert.throws(() => model.generate('a', { temperature: 0, draft, draftTokens: 2.5 }), /whole number/);
  assert.throws(() => model.generate('a', { temperature: 0, draftTokens: 3 }), /needs a draft/);
  assert.throws(() => model.generate('a', { temperature: 0, draft: separate }), /into: model/);
  assert.throws(() => model.generate('a', { temperature: 0, draft: 'x' }), /draft must be a loaded/);
  const emb = await load(undefined, { precision: 'q8_0', into: model });
  assert.throws(() => model.generate('a', { temperature: 0, draft: emb }), (e) => e.code === 'shape' && /vocabulary/.test(e.message));
  emb.dispose();
  assert.ok(!model.guests.has(emb));
  assert.throws(() => model.generate('a', { temperature: 0, draft: emb }), /disposed/);
  await assert.rejects(load(fixture('tiny-f16'), { into: drafts['tiny-f16'] }), /into must be a loaded model/);
});

test('sampling with a draft: every option works, a seed fixes the text, summary counts acceptances', async () => {
  const draft = drafts['tiny-bf16'];
  const opts = { temperature: 0.9, topK: 40, topP: 0.95, repetitionPenalty: 1.2, logitBias: { 13: 1.5 }, bannedWords: ['the'], ignoreEot: true, maxTokens: 30, draft, draftTokens: 3 };
  const a = await collect(model.generate('The quick brown fox', { ...opts, seed: 11 }));
  const b = await collect(model.generate('The quick brown fox', { ...opts, seed: 11 }));
  const c = await collect(model.generate('The quick brown fox', { ...opts, seed: 12 }));
  assert.equal(a.tokens.length, 30);
  assert.deepEqual(b.tokens, a.tokens);
  assert.notDeepEqual(c.tokens, a.tokens);
  const s = a.summary.speculative;
  assert.ok(s.proposed > 0 && s.accepted <= s.proposed && s.rate === s.accepted / s.proposed, JSON.stringify(s));
  // The q8_0 copy proposes what the model would sample most of the time.
  const q = await collect(model.generate('The quick brown fox', { ...opts, seed: 11, draft: drafts['q8_0 self'] }));
  assert.ok(q.summary.speculative.rate > 0.8, `q8_0 self-draft acceptance when sampling ${q.summary.speculative.rate}`);
});

test('load(dir, { draft, draftTokens }): the draft generate uses by default; { draft: null } turns it off', async () => {
  const dir = fixture('tiny-f32');
  const big = await load(dir, { draft: dir, draftTokens: 3 });
  try {
    assert.equal(big.draft.info.precision, 'q8_0'); // a draft source loads as q8_0 unless draftPrecision says otherwise
    assert.equal(big.draftTokens, 3);
    assert.ok(big.guests.has(big.draft));
    const plain = await collect(model.generate('The quick brown fox', { temperature: 0, ignoreEot: true, maxTokens: 20 }));
    const def = await collect(big.generate('The quick brown fox', { temperature: 0, ignoreEot: true, maxTokens: 20 }));
    assert.deepEqual(def.tokens, plain.tokens);
    assert.ok(def.summary.speculative.proposed > 0);
    // 20 tokens in rounds of at most 3 proposals + 1: at least 5 rounds.
    assert.ok(def.summary.speculative.proposed <= 3 * 5 + 3, JSON.stringify(def.summary.speculative));
    const off = await collect(big.generate('The quick brown fox', { temperature: 0, ignoreEot: true, maxTokens: 20, draft: null }));
    assert.deepEqual(off.tokens, plain.tokens);
    assert.equal(off.summary.speculative, undefined);
    assert.throws(() => big.generate('x', { draft: null, draftTokens: 2 }), /needs a draft/);
    const s = big.session();
    s.append('The quick brown fox');
    const inSession = await collect(s.generate({ temperature: 0, ignoreEot: true, maxTokens: 20 }));
    assert.deepEqual(inSession.tokens, plain.tokens);
    assert.ok(inSession.summary.speculative.proposed > 0);
  } finally {
    big.dispose();
  }
  assert.ok(big.draft.disposed);
  // A loaded draft: the model joins its instance (and is disposed with it).
  const small = await load(fixture('tiny-bf16'));
  const big2 = await load(dir, { draft: small });
  assert.equal(big2.draft, small);
  assert.equal(big2.draftTokens, null);
  const r = await collect(big2.generate('The quick brown fox', { temperature: 0, ignoreEot: true, maxTokens: 10 }));
  assert.ok(r.summary.speculative.proposed > 0);
  small.dispose();
  assert.ok(big2.disposed);
  // Errors, before anything is loaded where possible.
  await assert.rejects(load(dir, { draftTokens: 3 }), (e) => e.code === 'arg' && /needs a draft/.test(e.message));
  await assert.rejects(load(dir, { draft: dir, draftTokens: 0 }), (e) => e.code === 'arg' && /1 to 16/.test(e.message));
  await assert.rejects(load(dir, { draft: dir, draftPrecision: 'f8' }), (e) => e.code === 'arg' && /draftPrecision/.test(e.message));
  await assert.rejects(load(dir, { draft: undefined, draftPrecision: 'f32' }), /needs a draft/);
  const none = await load(dir, { draft: null });
  assert.equal(none.draft, null);
  none.dispose();
  await assert.rejects(load(dir, { draft: join(root, 'models') }), (e) => e.code === 'shape' && /^draft: .*vocabulary/.test(e.message));
  const other = await load(fixture('tiny-bf16'));
  await assert.rejects(load(dir, { draft: other, into: model }), /share one WebAssembly instance/);
  other.dispose();
  await assert.rejects(load(dir, { draft: other }), /draft must be a loaded, not disposed model/);
});

test('gpt2-wasm generate --draft: same text as without, acceptance on stderr with --stats', () => {
  const cli = join(root, 'js', 'node', 'cli.js');
  const run = (args) => spawnSync(process.execPath, [cli, 'generate', '--model', fixture('tiny-f32'), '-q', '--temperature', '0',
    '--max-tokens', '30', '--ignore-eot', '--prompt', 'The quick brown fox', ...args], { timeout: 60000 });
  const plain = run([]);
  const spec = run(['--draft', fixture('tiny-f32'), '--draft-tokens', '3', '--stats']);
  assert.equal(plain.status, 0, plain.stderr.toString());
  assert.equal(spec.status, 0, spec.stderr.toString());
  assert.equal(spec.stdout.toString(), plain.stdout.toString());
  assert.match(spec.stderr.toString(), /draft: \d+ of \d+ proposed tokens accepted \(\d+\.\d%\)/);
  const bad = spawnSync(process.execPath, [cli, 'generate', '--model', fixture('tiny-f32'), '-q', '--draft-tokens', '3', 'x']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr.toString(), /--draft-tokens needs --draft/);
  const sampled = run(['--temperature', '1', '--seed', '4', '--draft', fixture('tiny-f32')]);
  const again = run(['--temperature', '1', '--seed', '4', '--draft', fixture('tiny-f32')]);
  assert.equal(sampled.status, 0, sampled.stderr.toString());
  assert.equal(sampled.stdout.toString(), again.stdout.toString());
  assert.notEqual(sampled.stdout.toString(), plain.stdout.toString());
});
