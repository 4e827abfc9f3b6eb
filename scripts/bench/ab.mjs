#!/usr/bin/env node
// ab.mjs - A/B of WebAssembly models loaded side by side in one Node process: each is timed in
// turn, round after round, and the best round counts, so that ratios hold on a busy machine.
//
//   node scripts/bench/ab.mjs DIR:PRECISION[:THREADS] ...     (e.g. .bench-cache/gpt2-124m-f16:f16
//                                                              .bench-cache/gpt2-124m-f32:f32)
// Per model: load s and MB/s against a plain read of the same file (4 MiB reads, as the loader is
// fed), decode tok/s (STEPS single steps after a 32-token prompt), prefill tok/s (32 tokens), the
// roofline probe (every weight byte read once) and decode's percentage of it. Times are the
// process's CPU time (robust to other processes; right for 1 thread), or wall time with WALL=1
// (needed for THREADS > 1). Environment: ROUNDS (6), STEPS (16), WALL.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { load } from '../../js/index.js';
import { LIMITS } from '../../js/constants.js';

const specs = process.argv.slice(2).map((a) => {
  const [dir, precision, threads] = a.split(':');
  return { dir, precision, threads: Number(threads || 1) };
});
if (!specs.length) {
  console.error('usage: node scripts/bench/ab.mjs DIR:PRECISION[:THREADS] ...');
  process.exit(2);
}
const wall = () => performance.now();
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const now = process.env.WALL ? wall : cpu;

function plainRead(file) {
  const buf = Buffer.allocUnsafe(4 << 20);
  const fd = openSync(file, 'r');
  const t0 = wall();
  while (readSync(fd, buf, 0, buf.length, null) > 0);
  closeSync(fd);
  return (wall() - t0) / 1000;
}

const ms = [];
for (const s of specs) {
  const file = join(s.dir, 'model.safetensors');
  const readS = plainRead(file);
  const t0 = wall();
  const model = await load(s.dir, { precision: s.precision, threads: s.threads });
  const loadS = (wall() - t0) / 1000;
  const mb = statSync(file).size / 1e6;
  console.log(`${s.dir} ${s.precision} threads=${model.info.threads}: load ${loadS.toFixed(2)} s (${(mb / loadS).toFixed(0)} MB/s), plain read ${readS.toFixed(2)} s (${(mb / readS).toFixed(0)} MB/s)`);
  const m = model.core.m, core = model.core, w = model.weights, nVocab = model.config.nVocab;
  const ids = model.tokenize('The history of the written word goes back almost six thousand years. '.repeat(4)).slice(0, 32);
  const idPtr = core.malloc(4 * ids.length);
  m.HEAP32.set(ids, idPtr >>> 2);
  const logits = core.malloc(4 * nVocab);
  const state = core.checkPtr(m._wasm_state_create(w, LIMITS.prefillBatch, core.err));
  ms.push({
    s, info: model.info, best: Infinity, bestStream: Infinity, bestPre: Infinity,
    step: (t) => { const r = m._wasm_bench_step(state, t, logits, nVocab, core.err); if (r < 0) throw core.error(); return r; },
    prefill: () => core.check(m._gpt2_forward(state, idPtr, ids.length, logits, 0, core.err)),
    rewind: () => core.check(m._gpt2_state_rewind(state, 0, core.err)),
    stream: () => m._wasm_bench_stream_weights(w),
  });
}
// warm-up (V8 swaps in optimised code after the first calls), then alternating rounds
for (const x of ms) for (let r = 0; r < 3; r++) { x.rewind(); x.prefill(); let t = 1; for (let i = 0; i < 8; i++) t = x.step(t); x.stream(); }
await new Promise((r) => setTimeout(r, 300));
const steps = Number(process.env.STEPS || 16);
for (let round = 0; round < Number(process.env.ROUNDS || 6); round++) {
  for (const x of ms) {
    x.rewind();
    let a = now();
    x.prefill();
    x.bestPre = Math.min(x.bestPre, (now() - a) / 32);
    let t = 1;
    a = now();
    for (let i = 0; i < steps; i++) t = x.step(t);
    x.best = Math.min(x.best, (now() - a) / steps);
    a = now();
    x.stream();
    x.bestStream = Math.min(x.bestStream, now() - a);
  }
}
for (const x of ms) {
  console.log(`${x.s.dir} ${x.s.precision} threads=${x.info.threads}: decode ${(1000 / x.best).toFixed(1)} tok/s ` +
    `(${x.best.toFixed(2)} ms), prefill 32 ${(1000 / x.bestPre).toFixed(1)} tok/s, stream ${x.bestStream.toFixed(2)} ms, ` +
    `decode ${(100 * x.bestStream / x.best).toFixed(0)}% of the roofline`);
}
if (ms.length >= 2) console.log(`decode: first / second ${(ms[1].best / ms[0].best).toFixed(2)}x; prefill ${(ms[1].bestPre / ms[0].bestPre).toFixed(2)}x`);
process.exit(0);
