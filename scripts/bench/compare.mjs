#!/usr/bin/env node
// compare.mjs - our benchmark rows (npm run bench -- --save FILE) against the peer figures of
// issue 8 (measured earlier on the same machine, GPT-2 124M shape, 64-128-token prompt, Node 20),
// and the targets. Prints Markdown for BENCHMARKS.md.
//
//   node scripts/bench/compare.mjs FILE
import { readFileSync } from 'node:fs';

// The reference table: { prefill, decode, load } tok/s, tok/s, s.
const PEERS = {
  f32: {
    1: { 'onnxruntime-web 1.30 (transformers.js)': { prefill: 145, decode: 50, load: 2.0 }, 'llama.cpp WASM (wllama 3.8.1)': { prefill: 170, decode: 35, load: 2.8 } },
    2: { 'onnxruntime-web 1.30': { prefill: 250, decode: 65, load: 2.0 }, 'llama.cpp WASM': { prefill: 335, decode: 55, load: 2.9 } },
  },
  int8: {
    1: { 'onnxruntime-web 1.30 int8': { prefill: 332, decode: 46, load: 0.8 }, 'llama.cpp WASM q8_0': { prefill: 54, decode: 25, load: 2.2 } },
    2: { 'onnxruntime-web 1.30 int8': { prefill: 629, decode: 72, load: 0.9 } },
  },
};
const best = (prec, threadsList, key) => Math.max(...threadsList.flatMap((t) => Object.values(PEERS[prec][t] ?? {}).map((p) => p[key])));
const bestLoad = (prec) => Math.min(...[1, 2].flatMap((t) => Object.values(PEERS[prec][t] ?? {}).map((p) => p.load)));

const data = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const row = (b, p) => data.rows.find((r) => r.build === b && r.precision === p && !r.na);
const x = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : 'n/a');
const n = (v, d = 1) => (typeof v === 'number' ? v.toFixed(d) : 'n/a');
const ok = (c) => (c === undefined ? 'n/a' : c ? '**met**' : 'not met');

const out = [];
out.push('| ours | peer figure | prefill ratio | decode ratio | load ratio (peer / ours) |', '|---|---|---|---|---|');
for (const [b, t] of [['wasm', 1], ['wasm-mt', 2]]) {
  for (const [ours, prec] of [['f32', 'f32'], ['q8_0', 'int8']]) {
    const r = row(b, ours);
    for (const [name, p] of Object.entries(PEERS[prec][t] ?? {})) {
      out.push(`| ${b} ${ours} | ${name}, ${t} thread${t > 1 ? 's' : ''}: ${p.prefill} / ${p.decode} tok/s, ${p.load} s | ` +
        `${r ? x(r.prefill1_tps, p.prefill) : 'n/a'} | ${r ? x(r.decode_tps, p.decode) : 'n/a'} | ${r ? x(p.load, r.load_s) : 'n/a'} |`);
    }
  }
}
out.push('');
const w = row('wasm', 'f32'), q = row('wasm', 'q8_0'), wm = row('wasm-mt', 'f32'), qm = row('wasm-mt', 'q8_0');
const roof = (r) => (r && r.stream_s ? 100 * r.stream_s * r.decode_tps : undefined);
const t = [];
const add = (what, target, value, met) => t.push(`| ${what} | ${target} | ${value} | ${ok(met)} |`);
const f1 = best('f32', [1], 'decode'), fAll = best('f32', [1, 2], 'decode');
add('decode, WASM 1 thread f32 >= 1.1x best f32 (1-thread peers)', `${n(1.1 * f1)} tok/s (1.1 x ${f1})`, n(w?.decode_tps), w && w.decode_tps >= 1.1 * f1);
add('  same, against the best f32 figure at any thread count', `${n(1.1 * fAll)} tok/s (1.1 x ${fAll})`, n(w?.decode_tps), w && w.decode_tps >= 1.1 * fAll);
add('decode, WASM 1 thread f32 >= 85% of roofline', '85%', `${n(roof(w), 0)}%`, w && roof(w) >= 85);
add('decode, WASM 1 thread q8_0 >= 85% of roofline', '85%', `${n(roof(q), 0)}%`, q && roof(q) >= 85);
const i1 = best('int8', [1], 'decode'), iAll = best('int8', [1, 2], 'decode');
add('decode, WASM 1 thread q8_0 >= 1.8x best int8 (1-thread peers)', `${n(1.8 * i1)} tok/s (1.8 x ${i1})`, n(q?.decode_tps), q && q.decode_tps >= 1.8 * i1);
add('  same, against the best int8 figure at any thread count', `${n(1.8 * iAll)} tok/s (1.8 x ${iAll})`, n(q?.decode_tps), q && q.decode_tps >= 1.8 * iAll);
const pf1 = best('f32', [1], 'prefill'), pfAll = best('f32', [1, 2], 'prefill');
add('prefill (128 tokens), WASM 1 thread f32 >= 1.3x best f32 (1-thread peers)', `${n(1.3 * pf1)} tok/s (1.3 x ${pf1})`, n(w?.prefill1_tps), w && w.prefill1_tps >= 1.3 * pf1);
add('  same, against the best f32 figure at any thread count', `${n(1.3 * pfAll)} tok/s (1.3 x ${pfAll})`, n(w?.prefill1_tps), w && w.prefill1_tps >= 1.3 * pfAll);
const pi1 = best('int8', [1], 'prefill'), piAll = best('int8', [1, 2], 'prefill');
add('prefill (128 tokens), WASM 1 thread q8_0 >= 1.2x best int8 (1-thread peers)', `${n(1.2 * pi1)} tok/s (1.2 x ${pi1})`, n(q?.prefill1_tps), q && q.prefill1_tps >= 1.2 * pi1);
add('  same, against the best int8 figure at any thread count', `${n(1.2 * piAll)} tok/s (1.2 x ${piAll})`, n(q?.prefill1_tps), q && q.prefill1_tps >= 1.2 * piAll);
for (const [m, s, p] of [[wm, w, 'f32'], [qm, q, 'q8_0']]) {
  add(`WASM 2 threads ${p}: prefill >= 1.7x our 1 thread`, '1.7x', m && s ? x(m.prefill1_tps, s.prefill1_tps) : 'n/a', m && s && m.prefill1_tps >= 1.7 * s.prefill1_tps);
  add(`WASM 2 threads ${p}: decode >= 1.3x our 1 thread`, '1.3x', m && s ? x(m.decode_tps, s.decode_tps) : 'n/a', m && s && m.decode_tps >= 1.3 * s.decode_tps);
}
for (const r of data.rows.filter((r) => !r.na && r.build.startsWith('wasm'))) {
  add(`peak RSS <= 1.3x the weights file: ${r.build} ${r.precision}`, `${n(1.3 * r.file_bytes / 1e6, 0)} MB`, `${n(r.rss_bytes / 1e6, 0)} MB (${x(r.rss_bytes, r.file_bytes)})`, r.rss_bytes <= 1.3 * r.file_bytes);
}
for (const [r, prec, label] of [[w, 'f32', 'wasm f32'], [q, 'int8', 'wasm q8_0'], [wm, 'f32', 'wasm-mt f32'], [qm, 'int8', 'wasm-mt q8_0']]) {
  const b = bestLoad(prec);
  add(`load <= half the best peer load of the same file: ${label}`, `${n(b / 2, 2)} s (best ${b} s)`, r ? `${n(r.load_s, 2)} s` : 'n/a', r && r.load_s <= b / 2);
}
console.log(out.join('\n'));
console.log('| target | needs | ours | |\n|---|---|---|---|\n' + t.join('\n'));
