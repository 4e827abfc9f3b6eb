// Speculative decoding through the JS API and the CLI: generate(prompt, { draft, draftTokens })
// gives the float64 reference's greedy tokens (tests/fixtures/tiny-f32 expected.json) and
// the plain greedy text, with a q8_0 self-draft (load(dir, { into: model })), an f16 copy and
// a different model (tiny-bf16); summary.speculative's counts; clear errors for sampling, a
// draft in another instance, bad draftTokens; `gpt2-wasm generate --draft`.
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
  await assert.rejects(collect(model.generate('a', { draft })), (e) => e.code === 'unsupported' && /greedy/.test(e.message));
  await assert.rejects(collect(model.generate('a', { temperature: 0, repetitionPenalty: 1.2, draft })), (e) => e.code === 'unsupported');
  await assert.rejects(collect(model.generate('a', { temperature: 0, draft, draftTokens: 17 })), (e) => e.code === 'arg' && /1 to 16/.test(e.message));
  await assert.rejects(collect(model.generate('a', { temperature: 0, draft, draftTokens: 0 })), (e) => e.code === 'arg' && /1 to 16/.test(e.message));
  assert.throws(() => model.generate('a', { temperature: 0, draft, draftTokens: 2.5 }), /whole number/);
  assert.throws(() => model.generate('a', { temperature: 0, draftTokens: 3 }), /needs a draft/);
  assert.throws(() => model.generate('a', { temperature: 0, draft: separate }), /into: model/);
  assert.throws(() => model.generate('a', { temperature: 0, draft: 'x' }), /draft must be a loaded/);
  const emb = await load(undefined, { precision: 'q8_0', into: model });
  await assert.rejects(collect(model.generate('a', { temperature: 0, draft: emb })), (e) => e.code === 'shape' && /vocabulary/.test(e.message));
  emb.dispose();
  assert.ok(!model.guests.has(emb));
  await assert.rejects(load(fixture('tiny-f16'), { into: drafts['tiny-f16'] }), /into must be a loaded model/);
});

test('gpt2-wasm generate --draft: same text as without, acceptance on stderr with --stats', () => {
  const cli = join(root, 'js', 'cli.js');
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
  const sampled = run(['--temperature', '1', '--draft', fixture('tiny-f32')]);
  assert.notEqual(sampled.status, 0);
  assert.match(sampled.stderr.toString(), /greedy/);
});
