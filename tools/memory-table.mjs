#!/usr/bin/env node
// memory-table.mjs - bytes each published GPT-2 model needs per precision, from the core's own
// estimate (gpt2_model_bytes: weights in the precision + one KV cache and scratch at full
// context, what the loader compares with the memory budget), and whether that fits in
// WebAssembly's 4 GB beside what a fresh module already uses.
//
//   node tools/memory-table.mjs [--check DIR]
//
// --check DIR loads a checkpoint (e.g. a random 124M-shape one from tools/gpt2_reference.py
// make) in each precision and compares the estimate with the module's memory actually in use
// (the heap's end after load + one state at full context). Respects GPT2_WASM_DIST.
import { Core } from '../js/core.js';
import { createModule } from '../js/wasm_module.js';
import { load } from '../js/index.js';

const MODELS = [
  ['distilgpt2', 6, 12, 768],
  ['gpt2', 12, 12, 768],
  ['gpt2-medium', 24, 16, 1024],
  ['gpt2-large', 36, 20, 1280],
  ['gpt2-xl', 48, 25, 1600],
];
const PRECISIONS = [['f32', 1], ['f16', 2], ['q8_0', 3]];
const LIMIT = 4 * 2 ** 30;

const core = new Core(await createModule());
const used = core.m.HEAPU8.length; // a fresh module's memory (static data, stack, first heap pages)
const bytesOf = (json, code) => {
  const [p, n] = core.string(JSON.stringify(json));
  try {
    const b = core.m._wasm_model_bytes(p, n, code, 0, core.err);
    if (b < 0) throw core.error();
    return b;
  } finally {
    core.free(p);
  }
};
const gb = (b) => (b / 1e9).toFixed(2);
const lines = ['| model | parameters | f32 | f16 | q8_0 |', '|---|---|---|---|---|'];
for (const [name, L, H, C] of MODELS) {
  const cfg = { n_layer: L, n_head: H, n_embd: C, vocab_size: 50257, n_positions: 1024 };
  const params = 50257 * C + 1024 * C + L * (12 * C * C + 13 * C) + 2 * C;
  const cells = PRECISIONS.map(([, code]) => {
    const b = bytesOf(cfg, code);
    return `${gb(b)} GB ${b + used <= LIMIT ? 'fits' : '**does not fit**'}`;
  });
  lines.push(`| ${name} | ${(params / 1e6).toFixed(0)}M | ${cells.join(' | ')} |`);
}
process.stdout.write(`${lines.join('\n')}\n\nGB = 10^9 bytes; a fresh module uses ${(used / 2 ** 20).toFixed(0)} MiB; ` +
  `"fits" = the estimate plus that is at most 4 GiB (${LIMIT} bytes).\n`);

const i = process.argv.indexOf('--check');
if (i > 0) {
  const dir = process.argv[i + 1];
  for (const [precision, code] of PRECISIONS) {
    const model = await load(dir, { precision });
    const m = model.core.m;
    const session = model.session(); // one state (64-token steps, full context), as the estimate assumes
    const sbrk = m.HEAPU8.length; // memory size: an upper bound of what is in use
    const cfg = model.config;
    const est = bytesOf({ n_layer: cfg.nLayer, n_head: cfg.nHead, n_embd: cfg.nEmbd, vocab_size: cfg.nVocab,
      n_positions: cfg.nCtx, n_inner: cfg.nInner }, code);
    process.stdout.write(`${dir} ${precision}: estimate ${est} bytes; module memory after load + one state ` +
      `${sbrk} bytes (weights ${model.info.weightsBytes}); memory - estimate = ${((sbrk - est) / 2 ** 20).toFixed(1)} MiB\n`);
    session.dispose?.();
    model.dispose();
  }
}
