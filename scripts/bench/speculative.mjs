#!/usr/bin/env node
// speculative.mjs - speculative decoding speed: greedy tokens/s with and without a draft, with
// the acceptance rate, natively (`gpt2 bench --speculative`) and in WebAssembly (the JS API,
// `load(big, { draft })`), as a Markdown table for BENCHMARKS.md.
//
//   node scripts/bench/speculative.mjs [--rows self-124m,distil-124m,self-large,distil-large,self-xl]
//        [--builds native,wasm] [--cache DIR] [--draft-tokens 2,4] [--runs 3] [--tokens 64] [--threads 1] [--json]
//
// Each row loads the big model and its draft once, then alternates: a plain greedy run of
// --tokens new tokens after a fixed prompt, then one run per draft token count, --runs times
// (a busy machine then slows both alike); tokens/s are medians, the speedup is the median of
// the per-round ratios. Every run's tokens are compared with the plain run's ("same": greedy
// speculative decoding must give exactly the big model's tokens). Checkpoints are looked up
// by folder name in --cache, then in .bench-cache/ (random weights with the published
// shapes: acceptance of a smaller random model is low, of a q8_0 copy high). The native tool
// is build/gpt2 (or GPT2_NATIVE_BUILD's), the WebAssembly build dist/ (npm run build).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROMPT = 'The history of the written word goes back almost six thousand years. Scribes in ancient ' +
  'Mesopotamia pressed wedge-shaped marks into wet clay, and merchants used those tablets to count grain, sheep and silver.';

// Row: the big model's folder names (first found) and precision, the draft's and its precision.
const ROWS = {
  'self-124m': { big: ['gpt2-124m-f32', 'gpt2-f32'], precision: 'f32', draft: ['gpt2-124m-f32', 'gpt2-f32'], draftPrecision: 'q8_0' },
  'distil-124m': { big: ['gpt2-124m-f32', 'gpt2-f32'], precision: 'f32', draft: ['distilgpt2-f32'], draftPrecision: 'f32' },
  'self-large': { big: ['gpt2-large-f32'], precision: 'f32', draft: ['gpt2-large-f32'], draftPrecision: 'q8_0' },
  'distil-large': { big: ['gpt2-large-f32'], precision: 'f32', draft: ['distilgpt2-f32'], draftPrecision: 'f32' },
  'self-xl': { big: ['gpt2-xl-f16'], precision: 'f16', draft: ['gpt2-xl-f16'], draftPrecision: 'q8_0' },
  // the test fixture (tests/cli/bench.test.mjs: --cache tests/fixtures), not in the default rows
  smoke: { big: ['tiny-f32'], precision: 'f32', draft: ['tiny-f32'], draftPrecision: 'q8_0', hidden: true },
};

function parseArgs(argv) {
  const o = { rows: Object.keys(ROWS).filter((r) => !ROWS[r].hidden), builds: ['native', 'wasm'], cache: null, ks: [2, 4], runs: 3, tokens: 64, threads: 1, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    const list = () => { i++; return v.split(','); };
    if (a === '--json') o.json = true;
    else if (a === '--rows') o.rows = list();
    else if (a === '--builds') o.builds = list();
    else if (a === '--cache') { o.cache = v; i++; }
    else if (a === '--draft-tokens') o.ks = list().map(Number);
    else if (a === '--runs') { o.runs = Number(v); i++; }
    else if (a === '--tokens') { o.tokens = Number(v); i++; }
    else if (a === '--threads') { o.threads = Number(v); i++; }
    else if (a === '--wasm-child') { o.child = JSON.parse(v); i++; }
    else throw new Error(`unknown option ${a} (see the header of scripts/bench/speculative.mjs)`);
  }
  for (const r of o.rows) if (!ROWS[r]) throw new Error(`unknown row ${r}; rows: ${Object.keys(ROWS).join(', ')}`);
  return o;
}

function find(names, cache) {
  for (const dir of [cache, join(root, '.bench-cache')].filter(Boolean)) {
    for (const n of names) if (existsSync(join(dir, n, 'model.safetensors'))) return join(dir, n);
  }
  return null;
}

const median = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

/** The WebAssembly measurement (in a child process, so each row's memory is its own). */
async function wasmChild({ big, precision, draft, draftPrecision, ks, runs, tokens, threads }) {
  const { load } = await import(join(root, 'js', 'index.js'));
  let t = performance.now();
  const model = await load(big, { precision, threads });
  const loadS = (performance.now() - t) / 1000;
  t = performance.now();
  const d = await load(draft, { precision: draftPrecision, into: model });
  const draftLoadS = (performance.now() - t) / 1000;
  const run = async (opts, n = tokens) => {
    const ids = [];
    let first = 0;
    const g = model.generate(PROMPT, { temperature: 0, ignoreEot: true, maxTokens: n, ...opts });
    for await (const p of g) { if (p.token !== null && ids.push(p.token) === 1) first = performance.now(); }
    const s = await g.summary;
    return { ids, tps: (ids.length - 1) / ((performance.now() - first) / 1000), spec: s.speculative };
  };
  await run({ draft: null }, 4); // warm-up
  const plain = [], per = ks.map((k) => ({ k, tps: [], ratio: [], proposed: 0, accepted: 0, same: true }));
  for (let r = 0; r < runs; r++) {
    const p = await run({ draft: null });
    plain.push(p.tps);
    for (const e of per) {
      const s = await run({ draft: d, draftTokens: e.k });
      e.tps.push(s.tps);
      e.ratio.push(s.tps / p.tps);
      e.proposed += s.spec.proposed;
      e.accepted += s.spec.accepted;
      e.same &&= s.ids.join() === p.ids.join();
    }
  }
  const out = {
    threads: model.info.threads, precision: model.info.precision, draft_precision: d.info.precision, load_s: loadS, draft_load_s: draftLoadS,
    tokens, runs, plain_tps: median(plain),
    draft: per.map((e) => ({ k: e.k, tps: median(e.tps), ratio: median(e.ratio), proposed: e.proposed, accepted: e.accepted, same: e.same })),
  };
  model.dispose();
  return out;
}

function measure(build, row, big, draft, o) {
  const cfg = { big, precision: row.precision, draft, draftPrecision: row.draftPrecision, ks: o.ks, runs: o.runs, tokens: o.tokens, threads: o.threads };
  const r = build === 'native'
    ? spawnSync(join(resolve(root, process.env.GPT2_NATIVE_BUILD || 'build'), 'gpt2'), ['bench', '--speculative', '--model', big, '--precision', row.precision, '--draft', draft,
      '--draft-precision', row.draftPrecision, '--draft-tokens', o.ks.join(','), '--runs', String(o.runs), '--tokens', String(o.tokens),
      '--threads', String(o.threads)], { encoding: 'utf8', maxBuffer: 1 << 20 })
    : spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--wasm-child', JSON.stringify(cfg)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const line = (r.stdout || '').trim().split('\n').pop() || '';
  try {
    return JSON.parse(line);
  } catch {
    const why = (r.stderr || '').trim().split('\n').filter((l) => /Error|error|nomem/.test(l))[0] || r.error?.message || `exit ${r.status}`;
    return { error: why.replace(/^.*?Gpt2Error: /, '') };
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) {
    try {
      process.stdout.write(`${JSON.stringify(await wasmChild(o.child))}\n`);
    } catch (e) {
      process.stdout.write(`${JSON.stringify({ error: `${e.code ? `${e.code}: ` : ''}${e.message}` })}\n`);
    }
    return;
  }
  const results = [];
  const table = ['| build | threads | model | draft | k | tok/s without | tok/s with | speedup | acceptance | same tokens |', '|---|---|---|---|---|---|---|---|---|---|'];
  const started = new Date().toISOString();
  for (const name of o.rows) {
    const row = ROWS[name];
    const big = find(row.big, o.cache), draft = find(row.draft, o.cache);
    for (const build of o.builds) {
      const label = `${row.big[0]} ${row.precision}`, dlabel = `${row.draft[0]} ${row.draftPrecision}`;
      const res = big && draft ? measure(build, row, big, draft, o) : { error: `not found: ${big ? row.draft[0] : row.big[0]}` };
      const from = table.length;
      results.push({ row: name, build, ...res });
      if (res.error) {
        table.push(`| ${build} | ${o.threads} | ${label} | ${dlabel} | | ${res.error} | | | | |`);
      } else {
        for (const e of res.draft) {
          const rate = e.proposed ? `${(100 * e.accepted / e.proposed).toFixed(1)}%` : 'n/a';
          table.push(`| ${build} | ${res.threads} | ${label} | ${dlabel} | ${e.k} | ${res.plain_tps.toFixed(2)} | ${e.tps.toFixed(2)} | ` +
            `${e.ratio.toFixed(2)}x | ${rate} | ${e.same ? 'yes' : '**no**'} |`);
        }
      }
      process.stderr.write(`${o.json ? JSON.stringify(results[results.length - 1]) : table.slice(from).join('\n')}\n`); // progress
    }
  }
  if (o.json) process.stdout.write(`${JSON.stringify({ started, options: { ...o, child: undefined }, results }, null, 1)}\n`);
  else process.stdout.write(`${table.join('\n')}\n`);
}

await main();
