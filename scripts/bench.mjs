#!/usr/bin/env node
// bench.mjs - `npm run bench`: speed of every build x precision on one checkpoint, as ONE table.
//
//   npm run bench [-- --model DIR] [--builds native,wasm,wasm-mt] [--precisions f32,f16,q8_0]
//                 [--quick | --smoke] [--runs N] [--json] [--save FILE] [--no-build]
//                 [--train SHAPES] [--train-size BxT] [--train-steps N] [--train-only] [--torch-lib DIR]
//
// Rows: build (native = build/gpt2 on 1 thread, native-mt = all cores (not by default),
// wasm = dist/gpt2.mjs (1 thread), wasm-mt = dist/gpt2-mt.mjs with one thread per core) x
// precision. Columns: load s, prefill tok/s (128- and 512-token prompts), decode tok/s (128 new
// tokens after a 128-token prompt; and single steps at 900 tokens of context), time to first
// token (128-token prompt), peak RSS, and the roofline: the time the same build takes to read
// every weight byte once (split over its threads; the best of runs + 4 reads) and decode's
// percentage of it (that time / decode's time per token). Below the table: each row's load speed
// (file MB / load s) against a plain read of the same file. Greedy decoding of a fixed prompt,
// after a warm-up (V8 has no on-stack replacement for WebAssembly: every timed loop is driven
// from JS, one call per step); medians of --runs (3) runs. Every configuration runs in a fresh child process (peak RSS:
// process.resourceUsage().maxRSS; natively VmHWM), native ones through `gpt2 bench --row`.
//
// Checkpoint: --model DIR (every precision loaded from DIR, converted while loading), or by
// default a random GPT-2 124M-shape checkpoint made once in .bench-cache/ (python3 + torch,
// tools/gpt2_reference.py make) plus its f16 and q8_0 copies (`gpt2 quantize`), each precision
// loading its own file. --smoke: tests/fixtures/tiny-f32 and tiny sizes (seconds; the test).
// --quick: smaller sizes, one run. Unless --no-build, builds what it needs first (`cmake --build
// build`, `npm run build`; make skips what is up to date). GPT2_NATIVE_BUILD (default build) and
// GPT2_WASM_DIST / GPT2_WASM_BUILD (scripts/build-wasm.sh) name other build folders.
//
// Training (a second table): fine-tuning tokens/s (AdamW, batch x seq 4x128 by default; the
// median of --train-steps timed steps after one warm-up step) for each shape of --train:
// embedded = models/ (the 4-layer model), 124m = the inference table's f32 checkpoint (--model
// or .bench-cache/gpt2-124m-f32). Side by side: native on 1 thread (`gpt2 finetune --no-save`),
// WASM on 1 thread and the threaded build on 2 (model.finetune in a child process; also its peak
// WebAssembly memory), PyTorch float32 on 1 and 2 threads (/usr/bin/python3
// tools/gpt2_reference.py trainbench; skipped with a note without python3-torch; --torch-lib DIR
// is put on LD_LIBRARY_PATH for it only, e.g. an extracted libopenblas0-pthread: Debian's torch
// otherwise uses the reference BLAS), and native on 2 threads (the last column). Defaults:
// full: embedded,124m, 2 timed steps; --quick: embedded, 1 step; --smoke: the tiny fixture at
// 2x16. --train none skips it.
// Plain Node, no dependencies.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, renameSync, rmSync, mkdirSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { DTYPES, LIMITS } from '../js/constants.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SIZES = {
  full: { p1: 128, p2: 512, dec: 128, ctx: 900, steps: 32, runs: 3 },
  quick: { p1: 32, p2: 128, dec: 16, ctx: 256, steps: 8, runs: 1 },
  smoke: { p1: 8, p2: 16, dec: 6, ctx: 40, steps: 4, runs: 1 },
};
const BUILDS = ['native', 'native-mt', 'wasm', 'wasm-mt'];
const PRECISIONS = DTYPES;
const PROMPT =
  'The history of the written word goes back almost six thousand years. Scribes in ancient ' +
  'Mesopotamia pressed wedge-shaped marks into wet clay, and merchants used those tablets to ' +
  'count grain, sheep and silver. Over the centuries the marks became signs for sounds, and ' +
  'the signs became alphabets that traveled along trade routes from one sea to another. ';

const USAGE = `usage: npm run bench [-- options]   (node scripts/bench.mjs [options])
  --model DIR            checkpoint folder (default: a random GPT-2 124M-shape one in .bench-cache/)
  --builds LIST          of ${BUILDS.join(', ')} (default native,wasm,wasm-mt)
  --precisions LIST      of ${PRECISIONS.join(', ')} (default all)
  --quick                smaller sizes, one run (a fast look)
  --smoke                tests/fixtures/tiny-f32 and tiny sizes (seconds)
  --runs N               median of N runs (default 3)
  --json                 print the rows as JSON
  --save FILE            also write the rows as JSON to FILE
  --no-build             use the existing builds (build/gpt2, dist/) without running the build
  --train SHAPES         training table: embedded, 124m (or none); default embedded,124m (--quick: embedded)
  --train-size BxT       batch x sequence of the training table (default 4x128)
  --train-steps N        timed training steps after a warm-up step (default 2; --quick 1)
  --train-only           only the training table
  --torch-lib DIR        prepended to LD_LIBRARY_PATH for PyTorch only (e.g. an OpenBLAS)`;

function parseArgs(argv) {
  const o = { builds: 'native,wasm,wasm-mt', precisions: PRECISIONS.join(','), sizes: 'full', build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usageError(`option ${a} needs a value`);
      return argv[++i];
    };
    if (a === '--model') o.model = value();
    else if (a === '--builds') o.builds = value();
    else if (a === '--precisions') o.precisions = value();
    else if (a === '--precision') o.precision = value();
    else if (a === '--build') o.rowBuild = value();
    else if (a === '--sizes') o.sizeList = value();
    else if (a === '--runs') o.runs = Number(value());
    else if (a === '--quick') o.sizes = 'quick';
    else if (a === '--smoke') o.sizes = 'smoke';
    else if (a === '--json') o.json = true;
    else if (a === '--save') o.save = value();
    else if (a === '--no-build') o.build = false;
    else if (a === '--row') o.row = true;
    else if (a === '--train-row') o.trainRow = true;
    else if (a === '--threads') o.threads = Number(value());
    else if (a === '--train') o.train = value();
    else if (a === '--train-size') o.trainSize = value();
    else if (a === '--train-steps') o.trainSteps = Number(value());
    else if (a === '--train-only') o.trainOnly = true;
    else if (a === '--torch-lib') o.torchLib = value();
    else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0); }
    else usageError(`unknown option '${a}'`);
  }
  return o;
}

function usageError(msg) {
  console.error(`bench: ${msg} (see npm run bench -- --help)`);
  process.exit(2);
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const now = () => performance.now();

// ---------------------------------------------------------------------------------------------
// One WebAssembly configuration (the child process): prints one JSON line.

async function wasmRow(o) {
  const z = sizesFrom(o.sizeList);
  const { load } = await import('../js/index.js');
  const mt = o.rowBuild === 'wasm-mt';
  const t0 = now();
  const model = await load(o.model, { precision: o.precision, threads: mt ? 'auto' : 1 });
  const loadS = (now() - t0) / 1000;
  const info = model.info;
  if (mt && info.build !== 'wasm-simd-threads') {
    return { na: `threaded build not available (${info.build ?? 'no model.info.build'}; build dist/gpt2-mt.* with npm run build)` };
  }
  if (mt && !(info.threads > 1)) return { na: `the threaded build runs ${info.threads} thread(s) here` };
  if (info.precision !== undefined && o.precision !== 'auto' && info.precision !== o.precision) {
    return { na: `asked for ${o.precision}, got ${info.precision} (precision option not available?)` };
  }
  if (info.precision === undefined && o.precision !== 'f32') return { na: 'precision option not available yet' };

  const m = model.core.m;
  const core = model.core;
  const w = model.weights;
  const nVocab = model.config.nVocab;
  const need = Math.max(z.p1, z.p2, z.ctx + z.steps);
  if (need > model.config.nCtx || z.p1 + z.dec > model.config.nCtx) {
    return { error: `the model's context (${model.config.nCtx}) is shorter than the benchmark needs (${need})` };
  }
  let ids = [];
  for (let reps = 2; ids.length < need; reps *= 2) ids = model.tokenize(PROMPT.repeat(reps));
  const idPtr = core.malloc(4 * ids.length);
  m.HEAP32.set(ids, idPtr >>> 2);
  const logits = core.malloc(4 * nVocab);
  const state = core.checkPtr(m._wasm_state_create(w, LIMITS.prefillBatch, core.err));
  const forward = (n, from = 0) => core.check(m._gpt2_forward(state, idPtr + 4 * from, n, logits, 0, core.err));
  const rewind = (pos) => core.check(m._gpt2_state_rewind(state, pos, core.err));
  const argmax = () => {
    const l = m.HEAPF32.subarray(logits >>> 2, (logits >>> 2) + nVocab);
    let best = 0;
    for (let i = 1; i < nVocab; i++) if (l[i] > l[best]) best = i;
    return best;
  };
  const step = typeof m._wasm_bench_step === 'function'
    ? (t) => { const r = m._wasm_bench_step(state, t, logits, nVocab, core.err); if (r < 0) throw core.error(); return r; }
    : (t) => { m.HEAP32[idPtr >>> 2] = t; forward(1); m.HEAP32[idPtr >>> 2] = ids[0]; return argmax(); };
  // the roofline probe: every weight byte once (split over the pool where the build has one)
  const stream = typeof m._wasm_bench_stream_weights === 'function' ? () => m._wasm_bench_stream_weights(w) : null;
  const runs = Math.max(1, z.runs);
  const time = (fn) => { const a = now(); fn(); return (now() - a) / 1000; };

  // warm-up: every path several times. V8 first runs WebAssembly in its baseline compiler
  // (Liftoff) and swaps in optimised code for later calls once a function has done enough work
  // (a running call keeps its code), so the timed calls come after these, and a pause lets the
  // background compilation finish. Checked against node --no-liftoff (all optimised up front).
  const warm = Math.min(64, z.p1);
  for (let r = 0; r < 4; r++) {
    rewind(0);
    forward(warm);
    let t = ids[0];
    for (let i = 0; i < 8; i++) t = step(t);
    if (stream) stream();
    await new Promise((res) => setTimeout(res, 50));
  }
  await new Promise((res) => setTimeout(res, 200));
  let checksum = 0, streamS = null;
  if (stream) {
    const v = [];
    for (let r = 0; r < runs + 4; r++) v.push(time(() => { checksum = (checksum + stream()) >>> 0; }));
    streamS = Math.min(...v); // the roofline: the best of several reads
  }
  const prefill = [z.p1, z.p2].map((n) => {
    const v = [];
    for (let r = 0; r < runs; r++) { rewind(0); v.push(time(() => forward(n))); }
    return n / median(v);
  });
  // decode: the public API's generation (greedy), dec new tokens after a p1-token prompt
  const dec = [], ttft = [];
  for (let r = 0; r < runs; r++) {
    const gen = model.generate(ids.slice(0, z.p1), { maxTokens: z.dec, temperature: 0, ignoreEot: true });
    let a = 0, first = 0, got = 0;
    a = now();
    for await (const piece of gen) if (piece.token !== null && ++got === 1) first = now();
    const b = now();
    const { timings } = await gen.summary;
    ttft.push((timings?.firstTokenMs ?? first - a) / 1000);
    dec.push(got > 1 ? (got - 1) / ((b - first) / 1000) : 0);
  }
  // decode at ctx tokens of context: single steps
  rewind(0);
  forward(z.ctx);
  let next = argmax();
  const ctxv = [];
  for (let r = 0; r < runs; r++) {
    rewind(z.ctx);
    const s = time(() => { for (let i = 0; i < z.steps; i++) next = step(next); });
    ctxv.push(z.steps / s);
  }
  m._gpt2_state_free(state);
  core.free(idPtr);
  core.free(logits);
  let fileBytes = 0;
  try { fileBytes = statSync(join(o.model, 'model.safetensors')).size; } catch { /* not a folder */ }
  const row = {
    threads: info.threads ?? 1, precision: info.precision ?? 'f32', load_s: loadS,
    prefill1_tps: prefill[0], prefill2_tps: prefill[1], decode_tps: median(dec), decode_ctx_tps: median(ctxv),
    ttft_s: median(ttft), rss_bytes: 0, stream_s: streamS, weights_bytes: info.weightsBytes ?? 0,
    file_bytes: fileBytes, checksum, wasm_build: info.build ?? 'wasm-simd',
  };
  model.dispose();
  row.rss_bytes = process.resourceUsage().maxRSS * 1024;
  return row;
}

function sizesFrom(list) {
  const [p1, p2, dec, ctx, steps, runs] = String(list).split(',').map(Number);
  return { p1, p2, dec, ctx, steps, runs };
}

// ---------------------------------------------------------------------------------------------
// The parent: builds, checkpoint, one child per configuration, the table.

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  return { ok: r.status === 0, status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

const nativeDir = () => resolve(root, process.env.GPT2_NATIVE_BUILD || 'build');
const distDir = () => resolve(root, process.env.GPT2_WASM_DIST || 'dist');

function buildNative(log) {
  const dir = nativeDir();
  if (!run('cmake', ['--version']).ok) return 'cmake not found (apt-get install cmake gcc make)';
  log(`bench: cmake --build ${dir} --target gpt2`);
  const c = run('cmake', ['-S', '.', '-B', dir, '-DCMAKE_BUILD_TYPE=Release'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const b = c.ok && run('cmake', ['--build', dir, '-j', String(os.availableParallelism?.() ?? 2), '--target', 'gpt2'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  return c.ok && b.ok ? null : `native build failed (cmake -S . -B ${dir} && cmake --build ${dir})`;
}

function buildWasm(log) {
  if (!run('sh', ['-c', 'command -v emcmake']).ok) return 'emscripten not found (apt-get install emscripten; then npm run build)';
  log('bench: npm run build (scripts/build-wasm.sh)');
  const r = run('bash', ['scripts/build-wasm.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
  return r.ok ? null : 'WebAssembly build failed (npm run build)';
}

/** Folders per precision: { f32, f16, q8_0, own } (own: one file per precision). */
function checkpoints(o, log) {
  if (o.model) { const d = resolve(o.model); return { f32: d, f16: d, q8_0: d, own: false }; }
  if (o.sizes === 'smoke') { const d = join(root, 'tests/fixtures/tiny-f32'); return { f32: d, f16: d, q8_0: d, own: false }; }
  const cache = join(root, '.bench-cache');
  const dirs = { f32: join(cache, 'gpt2-124m-f32'), f16: join(cache, 'gpt2-124m-f16'), q8_0: join(cache, 'gpt2-124m-q8_0'), own: true };
  const make = ['tools/gpt2_reference.py', 'make', '--out', dirs.f32, '--layers', '12', '--embd', '768', '--heads', '12',
    '--ctx', '1024', '--vocab-from', 'models', '--std', '0.02', '--seed', '1'];
  if (!existsSync(dirs.f32)) {
    if (!run('/usr/bin/python3', ['-c', 'import torch, numpy']).ok) {
      console.error(`bench: no --model given and no checkpoint in .bench-cache/; making one needs python3 with torch:\n` +
        `  /usr/bin/python3 ${make.join(' ')}\n` +
        `or pass --model DIR (a Hugging Face GPT-2 folder, e.g. npx gpt2-wasm download gpt2 --dir models/gpt2)`);
      process.exit(1);
    }
    mkdirSync(cache, { recursive: true });
    log('bench: making a random GPT-2 124M-shape checkpoint in .bench-cache/ (once)');
    const tmp = `${dirs.f32}.tmp`;
    make[3] = tmp;
    const r = run('/usr/bin/python3', make, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (!r.ok) { console.error('bench: making the checkpoint failed'); process.exit(1); }
    renameSync(tmp, dirs.f32);
  }
  return dirs;
}

/** Writes the f16 / q8_0 copy if missing: native gpt2 quantize, else the Node tool's. */
function ensureCopy(dirs, p, log) {
  if (!dirs.own || p === 'f32' || existsSync(dirs[p])) return null;
  const tmp = `${dirs[p]}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  log(`bench: writing the ${p} copy .bench-cache/${dirs[p].split('/').pop()} (once)`);
  const gpt2 = join(nativeDir(), 'gpt2');
  const r = existsSync(gpt2)
    ? run(gpt2, ['quantize', dirs.f32, tmp, '--type', p], { stdio: ['ignore', 'ignore', 'inherit'] })
    : run(process.execPath, ['js/node/cli.js', 'quantize', dirs.f32, tmp, '--type', p], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (!r.ok) return `cannot write the ${p} copy`;
  renameSync(tmp, dirs[p]);
  return null;
}

function parseRow(r) {
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (line) {
    try {
      const row = JSON.parse(line);
      if (row.error) return { na: row.error };
      return row;
    } catch { /* fall through */ }
  }
  const err = (r.stderr || '').trim().split('\n').filter(Boolean).pop() || `exit status ${r.status}`;
  return { na: err.slice(0, 160) };
}

function measure(build, p, dir, z, failures) {
  const sizes = [z.p1, z.p2, z.dec, z.ctx, z.steps, z.runs].join(',');
  if (build === 'native' || build === 'native-mt') {
    const gpt2 = join(nativeDir(), 'gpt2');
    if (failures.native) return { na: failures.native };
    if (!existsSync(gpt2)) return { na: `no ${gpt2} (cmake -S . -B build && cmake --build build)` };
    return parseRow(run(gpt2, ['bench', '--row', '--model', dir, '--precision', p, '--threads', build === 'native' ? '1' : '0', '--sizes', sizes]));
  }
  if (failures.wasm) return { na: failures.wasm };
  if (!existsSync(join(distDir(), 'gpt2.mjs'))) return { na: `no ${join(distDir(), 'gpt2.mjs')} (npm run build)` };
  if (build === 'wasm-mt' && !existsSync(join(distDir(), 'gpt2-mt.mjs'))) return { na: 'threaded build not built (dist/gpt2-mt.mjs missing: npm run build)' };
  return parseRow(run(process.execPath, [fileURLToPath(import.meta.url), '--row', '--build', build, '--model', dir,
    '--precision', p, '--sizes', sizes], { env: { ...process.env, GPT2_WASM_DIST: distDir() } }));
}

/** MB/s of a plain read of file (4 MiB reads into one buffer, as the loader is fed; the best of 2). */
function plainReadMBps(file) {
  const buf = Buffer.allocUnsafe(4 << 20);
  let best = Infinity;
  for (let r = 0; r < 2; r++) {
    const fd = openSync(file, 'r');
    const t0 = now();
    while (readSync(fd, buf, 0, buf.length, null) > 0);
    best = Math.min(best, now() - t0);
    closeSync(fd);
  }
  return statSync(file).size / 1e6 / (best / 1000);
}

const f = (v, d = 0) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '');
const fSig = (v) => (typeof v !== 'number' || !Number.isFinite(v) ? '' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toPrecision(3));

export function header(z) {
  return [
    '| build | threads | precision | file MB | load s | ' +
      `prefill ${z.p1} tok/s | prefill ${z.p2} tok/s | decode tok/s (${z.dec} new after ${z.p1}) | ` +
      `decode tok/s @${z.ctx} ctx | first token ms (${z.p1} prompt) | peak RSS MB | RSS / file | ` +
      'stream weights ms | decode % of roofline |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
}

function tableRow(r) {
  if (r.na) return `| ${r.build} | | ${r.precision} | n/a (${r.na.replace(/\|/g, '/')}) | | | | | | | | | | |`;
  const roof = r.stream_s && r.decode_tps ? `${f(100 * r.stream_s * r.decode_tps)}%` : 'n/a';
  return `| ${r.build} | ${r.threads} | ${r.precision} | ${fSig(r.file_bytes / 1e6)} | ${fSig(r.load_s)} | ` +
    `${fSig(r.prefill1_tps)} | ${fSig(r.prefill2_tps)} | ${fSig(r.decode_tps)} | ${fSig(r.decode_ctx_tps)} | ` +
    `${fSig(r.ttft_s * 1000)} | ${fSig(r.rss_bytes / 1e6)} | ${r.file_bytes ? f(r.rss_bytes / r.file_bytes, 2) : ''} | ` +
    `${r.stream_s == null ? 'n/a' : fSig(r.stream_s * 1000)} | ${roof} |`;
}


// ---------------------------------------------------------------------------------------------
// Training: one WebAssembly configuration (the child process), and the table.

const TRAIN_TEXT = PROMPT.repeat(8);

/** tokens/s of the timed steps (all but the first), their median. */
const trainRate = (tps) => median(tps.slice(1));

async function wasmTrainRow(o) {
  const { load } = await import('../js/index.js');
  const [batch, seq] = o.trainSize.split('x').map(Number);
  const model = await load(o.model, { threads: o.threads });
  const info = model.info;
  if (o.threads > 1 && !(info.threads >= o.threads)) {
    return { error: `the threaded build runs ${info.threads} thread(s) here (${info.threadsFallback ?? info.build})` };
  }
  const tps = [];
  for await (const s of model.finetune(TRAIN_TEXT, { steps: o.trainSteps + 1, batch, seq, lr: 1e-4 })) tps.push(s.tokensPerSecond);
  const row = { tokens_per_second: trainRate(tps), threads: info.threads, wasm_bytes: model.core.m.HEAPU8.length };
  model.dispose();
  return row;
}

function trainNative(dir, threads, batch, seq, steps, data) {
  const gpt2 = join(nativeDir(), 'gpt2');
  if (!existsSync(gpt2)) return { na: `no ${gpt2}` };
  const r = run(gpt2, ['finetune', '--model', dir, '--data', data, '--no-save', '--json', '--threads', String(threads),
    '--steps', String(steps + 1), '--batch', String(batch), '--seq', String(seq)]);
  if (!r.ok) return { na: (r.stderr.trim().split('\n').pop() || `exit status ${r.status}`).slice(0, 160) };
  return { tokens_per_second: trainRate(r.stdout.trim().split('\n').map((l) => JSON.parse(l).tokens_per_second)), threads };
}

function trainWasm(dir, threads, size, steps) {
  if (!existsSync(join(distDir(), threads > 1 ? 'gpt2-mt.mjs' : 'gpt2.mjs'))) return { na: 'not built (npm run build)' };
  return parseRow(run(process.execPath, [fileURLToPath(import.meta.url), '--train-row', '--model', dir, '--threads',
    String(threads), '--train-size', size, '--train-steps', String(steps)], { env: { ...process.env, GPT2_WASM_DIST: distDir() } }));
}

function trainTorch(dir, threads, batch, seq, steps, torchLib) {
  // torch.set_num_threads does not reach a BLAS loaded through LD_LIBRARY_PATH: tell OpenBLAS too
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  if (torchLib) env.LD_LIBRARY_PATH = [resolve(torchLib), env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  if (!run('/usr/bin/python3', ['-c', 'import torch, numpy'], { env }).ok) return { na: 'no python3-torch (apt-get install python3-torch)' };
  const r = run('/usr/bin/python3', ['tools/gpt2_reference.py', 'trainbench', '--model', dir, '--threads', String(threads),
    '--batch', String(batch), '--seq', String(seq), '--steps', String(steps)], { env });
  if (!r.ok) return { na: (r.stderr.trim().split('\n').pop() || `exit status ${r.status}`).slice(0, 160) };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const TRAIN_COLUMNS = ['native 1t', 'WASM 1t', 'WASM 2t', 'PyTorch 1t', 'PyTorch 2t', 'native 2t'];

/** The training table's rows (one per shape); prints them unless json. */
function trainTable(o, dirs, log, print) {
  const shapes = (o.train ?? (o.sizes === 'smoke' ? 'tiny' : o.sizes === 'quick' ? 'embedded' : 'embedded,124m'))
    .split(',').filter((x) => x && x !== 'none');
  const size = o.trainSize ?? (o.sizes === 'smoke' ? '2x16' : '4x128');
  if (!/^\d+x\d+$/.test(size)) usageError(`--train-size is BxT (e.g. 4x128), got '${size}'`);
  const steps = o.trainSteps ?? (o.sizes === 'full' ? 2 : 1);
  if (!Number.isInteger(steps) || steps < 1 || steps > 100) usageError('--train-steps needs a whole number from 1 to 100');
  const [batch, seq] = size.split('x').map(Number);
  const data = join(os.tmpdir(), `gpt2-bench-train-${process.pid}.txt`);
  writeFileSync(data, TRAIN_TEXT);
  const rows = [];
  if (shapes.length) {
    print(`\ntraining: tokens/s, AdamW, batch x seq ${size}, median of ${steps} step(s) after a warm-up step`);
    print(`| shape | ${TRAIN_COLUMNS.join(' | ')} | native / PyTorch (1t) | WASM / native (1t) | WASM 1t memory MB |`);
    print(`|---|${TRAIN_COLUMNS.map(() => '---|').join('')}---|---|---|`);
  }
  for (const shape of shapes) {
    const dir = { tiny: join(root, 'tests/fixtures/tiny-f32'), embedded: join(root, 'models'), '124m': dirs?.f32 }[shape];
    if (!dir) usageError(`unknown training shape '${shape}' (embedded, 124m, none)`);
    log(`bench: training ${shape} (${dir})`);
    const cells = {
      'native 1t': trainNative(dir, 1, batch, seq, steps, data),
      'native 2t': trainNative(dir, 2, batch, seq, steps, data),
      'WASM 1t': trainWasm(dir, 1, size, steps),
      'WASM 2t': trainWasm(dir, 2, size, steps),
      'PyTorch 1t': trainTorch(dir, 1, batch, seq, steps, o.torchLib),
      'PyTorch 2t': trainTorch(dir, 2, batch, seq, steps, o.torchLib),
    };
    const v = (k) => cells[k].tokens_per_second;
    const ratio = (a, b) => (v(a) && v(b) ? `${(v(a) / v(b)).toFixed(2)}x` : 'n/a');
    const row = { shape, dir, batch, seq, steps, ...Object.fromEntries(TRAIN_COLUMNS.map((k) => [k, cells[k]])) };
    rows.push(row);
    print(`| ${shape} | ${TRAIN_COLUMNS.map((k) => (cells[k].na ? `n/a (${cells[k].na.replace(/\|/g, '/')})` : fSig(v(k)))).join(' | ')} | ` +
      `${ratio('native 1t', 'PyTorch 1t')} | ${ratio('WASM 1t', 'native 1t')} | ${fSig(cells['WASM 1t'].wasm_bytes / 1e6)} |`);
  }
  rmSync(data, { force: true });
  return rows;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.row || o.trainRow) {
    let row;
    try {
      row = await (o.trainRow ? wasmTrainRow(o) : wasmRow(o));
    } catch (e) {
      row = { error: String(e && e.message ? e.message : e).split('\n')[0] };
    }
    process.stdout.write(JSON.stringify(row) + '\n');
    process.exit(row.error ? 1 : 0);
  }
  const z = { ...SIZES[o.sizes] };
  if (o.runs !== undefined) {
    if (!Number.isInteger(o.runs) || o.runs < 1 || o.runs > 15) usageError('--runs needs a whole number from 1 to 15');
    z.runs = o.runs;
  }
  const builds = o.builds.split(',').filter(Boolean);
  const precisions = o.precisions.split(',').filter(Boolean);
  for (const b of builds) if (!BUILDS.includes(b)) usageError(`unknown build '${b}' (${BUILDS.join(', ')})`);
  for (const p of precisions) if (!PRECISIONS.includes(p)) usageError(`unknown precision '${p}' (${PRECISIONS.join(', ')})`);
  const log = (s) => console.error(s);

  const failures = {};
  if (o.build) {
    if (o.trainOnly || builds.some((b) => b.startsWith('native'))) failures.native = buildNative(log);
    if (o.trainOnly || builds.some((b) => b.startsWith('wasm'))) failures.wasm = buildWasm(log);
  }
  const dirs = checkpoints(o, log);
  const rows = [];
  if (o.trainOnly) builds.length = 0;
  if (!o.json && builds.length) {
    console.log(`model: ${dirs.own ? '.bench-cache/gpt2-124m-{f32,f16,q8_0} (random GPT-2 124M shape; each precision loads its own file)' : `${dirs.f32} (each precision converted while loading)`}`);
    for (const l of header(z)) console.log(l);
  }
  for (const build of builds) {
    for (const p of precisions) {
      const copyFailed = ensureCopy(dirs, p, log);
      const r = copyFailed ? { na: copyFailed } : measure(build, p, dirs[p], z, failures);
      const row = { build, ...r, precision: r.precision ?? p };
      if (row.load_s && row.file_bytes) {
        row.load_mbps = row.file_bytes / 1e6 / row.load_s;
        row.read_mbps = plainReadMBps(join(dirs[p], 'model.safetensors'));
      }
      rows.push(row);
      if (!o.json) console.log(tableRow(row));
    }
  }
  const training = trainTable(o, dirs, log, (l) => { if (!o.json) console.log(l); });
  const result = { sizes: z, model: dirs.own ? '.bench-cache/gpt2-124m' : dirs.f32, loadavg: os.loadavg(), node: process.version, rows, training };
  if (o.save) writeFileSync(o.save, JSON.stringify(result, null, 1) + '\n');
  if (o.json) console.log(JSON.stringify(result, null, 1));
  else {
    const speeds = rows.filter((r) => r.load_mbps);
    if (speeds.length) console.log('\nload speed (file MB / load s) against a plain read of the same file (4 MiB reads, best of 2):');
    for (const r of speeds) {
      console.log(`  ${r.build} ${r.precision}: load ${f(r.load_mbps)} MB/s, plain read ${f(r.read_mbps)} MB/s`);
    }
    console.log(`\n${o.trainOnly ? '' : `sizes: ${JSON.stringify(z)}; `}load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ` +
      `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}, node ${process.version}`);
  }
}

main().catch((e) => {
  console.error(`bench: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
