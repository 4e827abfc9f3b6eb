#!/usr/bin/env node
// memory-table.mjs - the memory table of BENCHMARKS.md: for each published GPT-2 shape and precision,
// the core's estimate (gpt2_model_bytes: weights in their pieces + one KV cache and scratch at
// full context + working memory; what the loader compares with the memory budget) and, with
// --measure, what actually happens when a random checkpoint of that shape is loaded in the
// WebAssembly module through the public API (load(dir, { precision })) and generates a few
// tokens: the real peak of memory in use, against the estimate.
//
//   node tools/memory-table.mjs [--measure all|SHAPE:PREC,...] [--cache DIR] [--threads N]
//                               [--json FILE]
//
// --measure   which rows to load: 'all', or a list such as gpt2-large:f32,gpt2-xl:f16
// --cache     where the random checkpoints are (made once with tools/gpt2_reference.py make,
//             /usr/bin/python3 + torch); default $GPT2_MODEL_CACHE, else .bench-cache/ in the
//             repository. Every shape is written in F32 except gpt2-xl in F16 (3.1 GB instead of
//             6.2 GB); a row in another precision converts while loading.
// --threads   1 (default: the single-thread build) or more (the threaded build)
// --json      also write every row as JSON
//
// "Real peak": the heap's end (malloc's high-water mark, wasm_heap_end; this module's
// malloc never gives memory back) after loading and generating 4 tokens, minus the heap's end
// of a fresh module holding just the tokenizer (what exists when the loader checks the
// budget). Each row is loaded in its own Node process. Respects GPT2_WASM_DIST.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Core } from '../js/core.js';
import { createModule } from '../js/wasm_module.js';
import { createTokenizer } from '../js/load.js';
import { load } from '../js/index.js';
import { PRECISIONS as CORE_PRECISIONS } from '../js/constants.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHAPES = [ // name, layers, heads, width, file dtype
  ['distilgpt2', 6, 12, 768, 'f32'],
  ['gpt2', 12, 12, 768, 'f32'],
  ['gpt2-medium', 24, 16, 1024, 'f32'],
  ['gpt2-large', 36, 20, 1280, 'f32'],
  ['gpt2-xl', 48, 25, 1600, 'f16'],
];
// wasm_model_bytes takes a gpt2_precision; every one but 'auto' (js/constants.js)
const PRECISIONS = CORE_PRECISIONS.filter((p) => p !== 'auto').map((p) => [p, CORE_PRECISIONS.indexOf(p)]);
const gb = (b) => (b / 1e9).toFixed(2);

/** Heap end of a fresh module holding only the tokenizer of dir, and the most the heap can grow to. */
async function baseline(threads, dir) {
  const mod = await createModule({ threads });
  const core = new Core(mod);
  const tok = createTokenizer(core, readFileSync(join(dir, 'vocab.json')), readFileSync(join(dir, 'merges.txt')));
  const result = { heapEnd: mod._wasm_heap_end(), heapMax: 2 ** 32 - 65536 }; // emscripten_get_heap_max
  mod._gpt2_tokenizer_free(tok);
  mod.gpt2Terminate?.();
  return result;
}

/** Child process: loads dir in precision and prints one JSON line. */
async function probe(dir, precision, threads) {
  const base = await baseline(threads, dir);
  const started = Date.now();
  let model;
  try {
    model = await load(dir, { precision, threads });
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ ok: false, code: e.code, message: e.message, seconds: (Date.now() - started) / 1000, base })}\n`);
    return;
  }
  const seconds = (Date.now() - started) / 1000;
  const m = model.core.m;
  const afterLoad = m._wasm_heap_end();
  const gen = model.generate('The memory of', { maxTokens: 4, temperature: 0 });
  let tokens = 0;
  for await (const piece of gen) tokens += piece.token === undefined ? 0 : 1;
  const row = {
    ok: true, seconds, tokens, info: model.info, base,
    weightsPeak: afterLoad - base.heapEnd, peak: m._wasm_heap_end() - base.heapEnd, memory: m.HEAPU8.length,
  };
  model.dispose();
  process.stdout.write(`${JSON.stringify(row)}\n`);
}

/** The estimate of shape x precision code from the core (bytes). */
function estimator(core) {
  return (cfg, code) => {
    const [p, n] = core.string(JSON.stringify(cfg));
    try {
      const b = core.m._wasm_model_bytes(p, n, code, 0, core.err);
      if (b < 0) throw core.error();
      return b;
    } finally {
      core.free(p);
    }
  };
}

/** Makes the random checkpoint of a shape in the cache once; returns its folder. */
function checkpoint(cache, [name, L, H, C, dtype]) {
  const dir = join(cache, `${name}-${dtype}`);
  if (existsSync(dir)) return dir;
  mkdirSync(cache, { recursive: true });
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  process.stderr.write(`memory-table: writing ${dir} (once)\n`);
  const r = spawnSync('/usr/bin/python3', [join(root, 'tools/gpt2_reference.py'), 'make', '--out', tmp,
    '--layers', `${L}`, '--embd', `${C}`, '--heads', `${H}`, '--ctx', '1024', '--vocab-from', join(root, 'models'),
    '--std', '0.02', '--seed', '1', '--dtype', dtype], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`making ${dir} failed (needs /usr/bin/python3 with torch and numpy)`);
  renameSync(tmp, dir);
  return dir;
}

function parseArgs(argv) {
  const o = { measure: '', cache: process.env.GPT2_MODEL_CACHE || join(root, '.bench-cache'), threads: 1, json: '' };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--measure') o.measure = v;
    else if (k === '--cache') o.cache = resolve(v);
    else if (k === '--threads') o.threads = Number(v);
    else if (k === '--json') o.json = v;
    else throw new Error(`unknown option ${k} (see the comment at the top of tools/memory-table.mjs)`);
    i++;
  }
  if (!Number.isInteger(o.threads) || o.threads < 1) throw new Error('--threads must be a whole number >= 1');
  return o;
}

async function main(argv) {
  if (argv[0] === '--probe') return probe(argv[1], argv[2], Number(argv[3]));
  const o = parseArgs(argv);
  const wanted = (name, p) => o.measure === 'all' || o.measure.split(',').includes(`${name}:${p}`);
  const core = new Core(await createModule());
  const estimate = estimator(core);
  const rows = [];
  for (const shape of SHAPES) {
    const [name, L, H, C] = shape;
    const cfg = { n_layer: L, n_head: H, n_embd: C, vocab_size: 50257, n_positions: 1024 };
    const params = 50257 * C + 1024 * C + L * (12 * C * C + 13 * C) + 2 * C;
    for (const [precision, code] of PRECISIONS) {
      const row = { model: name, params, precision, estimate: estimate(cfg, code), measured: false };
      if (wanted(name, precision)) {
        const dir = checkpoint(o.cache, shape);
        const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--probe', dir, precision, `${o.threads}`],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        const line = r.stdout.trim().split('\n').pop();
        if (r.status !== 0 || !line) throw new Error(`probe of ${name} ${precision} failed (status ${r.status})`);
        Object.assign(row, JSON.parse(line), { measured: true, file: shape[4] });
        process.stderr.write(`${name} ${precision}: ${row.ok ? `loads in ${row.seconds.toFixed(1)} s, peak ${gb(row.peak)} GB` :
          `fails: ${row.message}`} (estimate ${gb(row.estimate)} GB)\n`);
      }
      rows.push(row);
    }
  }
  // fits by the estimate: the estimate plus the fresh module with its tokenizer, within the heap's maximum
  const base = rows.find((r) => r.base)?.base ?? await baseline(o.threads, join(root, 'models'));
  const cell = (r) => {
    const fits = r.estimate >= 0 && r.estimate + base.heapEnd <= base.heapMax;
    if (!r.measured) return `${gb(r.estimate)} GB, ${fits ? 'fits' : '**does not fit**'} (estimated)`;
    if (r.ok) return `${gb(r.estimate)} GB, loads: peak ${gb(r.peak)} GB${fits ? '' : ' (**estimate said no**)'}`;
    const named = /precision '(\w+)'/.exec(r.message);
    return `${gb(r.estimate)} GB, **does not fit**: fails at once (${r.seconds.toFixed(1)} s)` +
      `${named ? `, names ${named[1]}` : ''}${fits ? ' (**estimate said yes**)' : ''}`;
  };
  const lines = ['| model | parameters | f32 | f16 | q8_0 |', '|---|---|---|---|---|'];
  for (let i = 0; i < rows.length; i += 3) {
    lines.push(`| ${rows[i].model} | ${(rows[i].params / 1e6).toFixed(0)}M | ${rows.slice(i, i + 3).map(cell).join(' | ')} |`);
  }
  const date = new Date().toISOString().slice(0, 10);
  process.stdout.write(`${lines.join('\n')}\n\nGB = 10^9 bytes. Estimate: weights + one KV cache and scratch at full context + ` +
    `working memory. "Fits": the estimate plus the ${(base.heapEnd / 2 ** 20).toFixed(0)} MiB a fresh module with its tokenizer ` +
    `uses is at most the ${base.heapMax} bytes WebAssembly memory can grow to. "Loads: peak": measured (${date}, ` +
    `${o.threads === 1 ? 'single-thread build' : `threaded build, ${o.threads} threads`}, random weights): the heap's ` +
    `high-water mark after loading and generating 4 tokens, beyond that fresh module.\n`);
  if (o.json) writeFileSync(o.json, `${JSON.stringify({ date, threads: o.threads, base, rows }, null, 1)}\n`);
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`memory-table: ${e.message}\n`);
  process.exit(1);
});
