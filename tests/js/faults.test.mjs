// Faults and concurrency through the JS API (issue 6): servers that lie about
// Content-Length, several models in one process, and generations running at the same time
// on one model. Expected continuations come from the float64 reference (expected.json).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { load } from '../../js/index.js';
import { assertGpt2Error, collect, expected, fixture } from './helpers/common.mjs';
import { serveFolder } from './helpers/server.mjs';

const greedy = { temperature: 0, ignoreEot: true };
const caseOf = (fx, name) => expected(fx).cases.find((c) => c.name === name);

let server;
before(async () => { server = await serveFolder(fixture('tiny-f32')); });
after(async () => { await server.close(); });

/** Loads tiny-f32 from the server in good mode and checks its greedy continuation. */
async function assertGoodLoadWorks() {
  const c = caseOf('tiny-f32', 'english');
  const model = await load(server.url('normal'));
  try {
    const r = await collect(model.generate(c.ids, { ...greedy, maxTokens: 8 }));
    assert.deepEqual(r.tokens, c.greedy.slice(0, 8));
  } finally {
    model.dispose();
  }
}

test('a server claiming more bytes than it sends: clear error naming the announced size, then a good load works', async () => {
  // The announced size is checked against the checkpoint's own header before the data arrives.
  const err = await assertGpt2Error(() => load(server.url('overlong')), 'format', /model\.safetensors/);
  assert.match(err.message, /announced by the server's Content-Length/);
  await assertGoodLoadWorks();
});

test('a server claiming fewer bytes than the file has: the checkpoint is reported truncated', async () => {
  // The client reads exactly Content-Length bytes; the safetensors header knows the real size.
  const err = await assertGpt2Error(() => load(server.url('short')), 'format', /truncated/);
  assert.match(err.message, /model\.safetensors/);
  assert.match(err.message, /announced by the server's Content-Length/);
  await assertGoodLoadWorks();
});

test('two models loaded at once in one process generate independently and exactly', async () => {
  const [a, b] = await Promise.all([load(fixture('tiny-f32')), load(fixture('tiny-f16'))]);
  try {
    const ca = caseOf('tiny-f32', 'english');
    const cb = caseOf('tiny-f16', 'english');
    // Interleave the two generations token by token.
    const ga = a.generate(ca.ids, { ...greedy, maxTokens: 16 });
    const gb = b.generate(cb.ids, { ...greedy, maxTokens: 16 });
    const ta = [], tb = [];
    for (;;) {
      const [ra, rb] = await Promise.all([ga.next(), gb.next()]);
      if (!ra.done && ra.value.token !== null) ta.push(ra.value.token);
      if (!rb.done && rb.value.token !== null) tb.push(rb.value.token);
      if (ra.done && rb.done) break;
    }
    assert.deepEqual(ta, ca.greedy);
    assert.deepEqual(tb, cb.greedy);
    // Disposing one leaves the other working.
    a.dispose();
    const again = await collect(b.generate(cb.ids, { ...greedy, maxTokens: 16 }));
    assert.deepEqual(again.tokens, cb.greedy);
  } finally {
    if (!a.disposed) a.dispose();
    b.dispose();
  }
});

test('generations running at the same time on one model do not disturb each other', async () => {
  // Policy (README): each generation owns its own KV cache; the weights are shared read-only,
  // so concurrent generations on one model run interleaved, each exactly as if alone.
  const model = await load(fixture('tiny-f32'));
  try {
    const cases = expected('tiny-f32').cases.filter((c) => c.greedy && c.greedy.length >= 8).slice(0, 3);
    assert.ok(cases.length >= 2, 'at least two reference cases');
    const runs = cases.map((c) => collect(model.generate(c.ids, { ...greedy, maxTokens: 8 })));
    const results = await Promise.all(runs);
    results.forEach((r, i) => assert.deepEqual(r.tokens, cases[i].greedy.slice(0, 8), cases[i].name));
    // score() and tokenize() while a generation is suspended between tokens
    const gen = model.generate(cases[0].ids, { ...greedy, maxTokens: 8 });
    const first = await gen.next();
    const s = model.score(cases[1].ids);
    assert.equal(s.tokens.length, cases[1].ids.length);
    const rest = await collect(gen);
    assert.deepEqual([first.value.token, ...rest.tokens], cases[0].greedy.slice(0, 8));
  } finally {
    model.dispose();
  }
});

test('dispose() during a generation ends it with an error, not a crash', async () => {
  const model = await load(fixture('tiny-f32'));
  const c = caseOf('tiny-f32', 'english');
  const gen = model.generate(c.ids, { ...greedy, maxTokens: 16 });
  await gen.next();
  model.dispose();
  await assert.rejects(async () => { for await (const _ of gen); }, (e) => e.name === 'Gpt2Error' || e.name === 'AbortError');
});
