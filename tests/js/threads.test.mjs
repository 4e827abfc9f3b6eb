// The threaded WebAssembly build (dist/gpt2-mt.*): chosen in Node by default, reported in
// model.info, and bit-identical to the single-thread build (the kernels' sums do not depend on
// how rows are split between threads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from '../../js/index.js';

test('threads: auto picks the threaded build in Node; 1 the single-thread one; same logits', async () => {
  const one = await load(undefined, { threads: 1 });
  const two = await load(undefined, { threads: 2 });
  const auto = await load();
  try {
    assert.equal(one.info.threads, 1);
    assert.equal(one.info.build, 'wasm-simd');
    assert.equal(two.info.threads, 2);
    assert.equal(two.info.build, 'wasm-simd-threads');
    assert.ok(auto.info.threads >= 1);
    assert.equal(auto.info.build, auto.info.threads > 1 ? 'wasm-simd-threads' : 'wasm-simd');
    const ids = one.tokenize('It is a truth universally acknowledged, that a single man in possession of a good fortune');
    const a = one.logits(ids), b = two.logits(ids);
    assert.deepEqual(new Uint32Array(b.buffer, b.byteOffset, b.length), new Uint32Array(a.buffer, a.byteOffset, a.length));
    const opts = { maxTokens: 12, temperature: 0.8, seed: 7 };
    let ta = '', tb = '';
    for await (const { text } of one.generate('Emma', opts)) ta += text;
    for await (const { text } of two.generate('Emma', opts)) tb += text;
    assert.equal(tb, ta);
  } finally {
    one.dispose();
    two.dispose();
    auto.dispose();
  }
});

test('threads: invalid values are rejected', async () => {
  await assert.rejects(load(undefined, { threads: 0 }), { code: 'arg' });
  await assert.rejects(load(undefined, { threads: 'many' }), { code: 'arg' });
});
