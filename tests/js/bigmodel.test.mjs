// Big models: a model whose weights are more than 2 GB (one allocation of that size fails in a
// wasm32 heap) loads, because the weights are held in pieces (src/weights.h), and the pieces
// past 2 GB are read correctly. The checkpoint is made in memory and streamed: 26 layers of
// width 1280 (gpt2-large's), F16 in the file (1.2 GB), f32 in memory (2.31 GB > 2^31 bytes).
//
// Its weights are zero except for a pattern whose output follows by hand: wte row v (v < C) is
// the unit vector e_v (rows >= C are zero), the first layer's attention output bias is 5 e_J,
// the last layer's MLP output bias is 10 e_K and ln_f's gain is 1. With zero layer-norm gains,
// every attention and MLP branch outputs just its output bias, so the final residual of a token
// t < C is x = e_t + 5 e_J + 10 e_K at every position, and logit v is layernorm(x)[v] for v < C,
// 0 for v >= C. Greedy decoding then repeats K. Dropping either bias (e.g. a piece read at the
// wrong place) changes the logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from '../../js/index.js';
import { root } from './helpers/common.mjs';

const L = 26, C = 1280, H = 20, T = 1024, V = 50257, J = 100, K = 777;
const ONE = 0x3c00; // 1.0 in IEEE half precision

/** The tensors in file order: [name, shape, fill(view of uint16 elements) or null = zeros]. */
function tensors() {
  const unit = (at, value) => (u16) => { u16[at] = value; };
  const list = [
    ['wte.weight', [V, C], (u16) => { for (let v = 0; v < C; v++) u16[v * C + v] = ONE; }],
    ['wpe.weight', [T, C], null],
  ];
  for (let l = 0; l < L; l++) {
    const h = `h.${l}.`;
    list.push([`${h}ln_1.weight`, [C], null], [`${h}ln_1.bias`, [C], null],
      [`${h}attn.c_attn.weight`, [C, 3 * C], null], [`${h}attn.c_attn.bias`, [3 * C], null],
      [`${h}attn.c_proj.weight`, [C, C], null],
      [`${h}attn.c_proj.bias`, [C], l === 0 ? unit(J, 0x4500) : null], // 5.0
      [`${h}ln_2.weight`, [C], null], [`${h}ln_2.bias`, [C], null],
      [`${h}mlp.c_fc.weight`, [C, 4 * C], null], [`${h}mlp.c_fc.bias`, [4 * C], null],
      [`${h}mlp.c_proj.weight`, [4 * C, C], null],
      [`${h}mlp.c_proj.bias`, [C], l === L - 1 ? unit(K, 0x4900) : null]); // 10.0
  }
  list.push(['ln_f.weight', [C], (u16) => u16.fill(ONE)], ['ln_f.bias', [C], null]);
  return list;
}

/** model.safetensors as a stream that makes its bytes as they are read (zeros shared). */
function safetensorsStream() {
  const list = tensors();
  const header = {};
  let offset = 0;
  for (const [name, shape] of list) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'F16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = new Uint8Array(8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  head.set(new TextEncoder().encode(json), 8);
  const zeros = new Uint8Array(8 << 20);
  const parts = (function* () {
    yield head;
    for (const [, shape, fill] of list) {
      const bytes = shape.reduce((a, b) => a * b, 1) * 2;
      if (fill) {
        const u16 = new Uint16Array(bytes / 2);
        fill(u16);
        yield new Uint8Array(u16.buffer);
        continue;
      }
      for (let at = 0; at < bytes; at += zeros.length) yield zeros.subarray(0, Math.min(zeros.length, bytes - at));
    }
  })();
  return {
    stream: new ReadableStream({
      pull(controller) {
        const { value, done } = parts.next();
        if (done) controller.close(); else controller.enqueue(value);
      },
    }),
    dataBytes: offset,
  };
}

function files() {
  const config = { n_layer: L, n_head: H, n_embd: C, n_positions: T, vocab_size: V, n_inner: null };
  const { stream, dataBytes } = safetensorsStream();
  return {
    dataBytes,
    source: {
      'config.json': new TextEncoder().encode(JSON.stringify(config)),
      'vocab.json': readFileSync(join(root, 'models', 'vocab.json')),
      'merges.txt': readFileSync(join(root, 'models', 'merges.txt')),
      'model.safetensors': stream,
    },
  };
}

/** layernorm(e_t + 5 e_J + 10 e_K) with gain 1, bias 0 (eps 1e-5), in float64: the expected logits of v < C. */
function expectedLogits(t) {
  const x = new Float64Array(C);
  x[t] += 1;
  x[J] += 5;
  x[K] += 10;
  const mean = x.reduce((a, b) => a + b, 0) / C;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / C;
  return Array.from(x, (v) => (v - mean) / Math.sqrt(variance + 1e-5));
}

for (const threads of [1, 2]) {
  test(`weights over 2 GB load in pieces and compute (${threads === 1 ? 'single-thread' : 'threaded'} build)`, async () => {
    const { source, dataBytes } = files();
    assert.ok(dataBytes * 2 > 2 ** 31, 'f32 weights over 2 GB');
    const model = await load(source, { precision: 'f32', threads });
    try {
      assert.equal(model.info.precision, 'f32');
      assert.equal(model.info.precisionReason, 'f32 as asked');
      assert.ok(model.info.weightsBytes > 2 ** 31, `weights ${model.info.weightsBytes} bytes`);
      const t = 500; // a token id < C, not J or K
      const logits = model.logits([t, t, t]);
      const want = expectedLogits(t);
      // float32 sums of 1280 terms: relative error ~1e-6 of the largest logit (~32)
      let worst = 0;
      for (let v = 0; v < C; v++) worst = Math.max(worst, Math.abs(logits[v] - want[v]) / Math.abs(want[K]));
      assert.ok(worst < 2e-5, `logits of v < C differ from layernorm by ${worst} of the largest`);
      assert.ok(logits[K] > logits[J] && logits[J] > logits[t] && logits[t] > logits[0], 'K, then J, then t');
      for (const v of [C, 5000, V - 1]) assert.equal(logits[v], 0, `logit ${v}`);
      const out = [];
      for await (const piece of model.generate([t], { maxTokens: 3, temperature: 0 })) out.push(piece.token);
      assert.deepEqual(out, [K, K, K]);
    } finally {
      model.dispose();
    }
  });
}
