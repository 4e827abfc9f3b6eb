#!/usr/bin/env node
// browser.mjs - the same generation in Node and in Chromium (in a Web Worker, as the demo page
// runs it), side by side in one run, so that the ratio browser / Node says whether the page gets
// the speed the Node benchmark shows. Prints a Markdown table for BENCHMARKS.md.
//
//   node scripts/bench/browser.mjs [DIR] [--rounds N] [--tokens N] [--precisions f32,q8_0]
//
// DIR: a Hugging Face GPT-2 folder inside this repository (the page's server serves the
// repository only); default .bench-cache/gpt2-124m-f32 (made by `npm run bench`). For each
// precision and for 1 and 2 threads: load the model (converted while loading), then a
// 64-token prompt and --tokens (64) greedy tokens, in Node (the public API, load()) and in the
// page (loadInWorker(), the page served cross-origin isolated by scripts/serve.mjs, so the
// threaded build runs there too). Rounds alternate Node and browser; each figure is the median
// of --rounds (3) after a warm-up. Decode tok/s is timed inside each environment, from the
// first generated token to the last. Needs `npm run build` and Chromium (scripts/setup.sh test).
import { existsSync } from 'node:fs';
import { relative, resolve, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import os from 'node:os';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const rounds = Number(opt('--rounds', 3));
const tokens = Number(opt('--tokens', 64));
const precisions = opt('--precisions', 'f32,q8_0').split(',');
const dir = resolve(args[0] ?? join(root, '.bench-cache', 'gpt2-124m-f32'));
const rel = relative(root, dir);
if (!existsSync(join(dir, 'model.safetensors')) || rel.startsWith('..')) {
  console.error(`browser.mjs: ${dir} is not a GPT-2 folder inside ${root} (npm run bench makes .bench-cache/gpt2-124m-f32)`);
  process.exit(2);
}

const { load } = await import(pathToFileURL(join(root, 'js', 'index.js')).href);
const { startServer } = await import(pathToFileURL(join(root, 'scripts', 'serve.mjs')).href);
const { launchBrowser } = await import(pathToFileURL(join(root, 'tests', 'browser', 'launch.mjs')).href);

const PROMPT = Array.from({ length: 64 }, (_, i) => 100 + i * 7); // 64 token ids, the same in both

/** One timed generation: { prefill, decode } in tok/s. Runs unchanged in Node and in the page. */
async function timeGeneration(model, prompt, n) {
  const t0 = performance.now();
  let first = 0, count = 0;
  for await (const _ of model.generate(prompt, { maxTokens: n, temperature: 0, ignoreEot: true })) {
    if (count++ === 0) first = performance.now();
  }
  const end = performance.now();
  return { prefill: prompt.length / ((first - t0) / 1000), decode: (count - 1) / ((end - first) / 1000) };
}

const server = await startServer({ port: 0 });
const browser = await launchBrowser({ timeout: 600_000 });
await browser.page.goto(new URL('tests/browser/harness.html', server.url).href);
await browser.page.waitForFunction(() => document.body.dataset.ready === 'true');
await browser.page.evaluate(`window.timeGeneration = ${timeGeneration.toString()}`);
const isolated = await browser.page.evaluate(() => globalThis.crossOriginIsolated);

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const rows = [];
try {
  for (const precision of precisions) {
    for (const threads of [1, 2]) {
      const node = await load(dir, { precision, threads });
      const url = new URL(rel.split('/').map(encodeURIComponent).join('/') + '/', server.url).href;
      await browser.page.evaluate(async ({ url, precision, threads }) => {
        window.benchModel = await window.gpt2.loadInWorker(url, { precision, threads, cache: false });
      }, { url, precision, threads });
      const info = await browser.page.evaluate(() => ({ build: window.benchModel.info.build, threads: window.benchModel.info.threads }));
      const n = [], b = [];
      for (let r = 0; r <= rounds; r++) { // round 0: warm-up
        const x = await timeGeneration(node, PROMPT, tokens);
        const y = await browser.page.evaluate(({ prompt, n }) => window.timeGeneration(window.benchModel, prompt, n), { prompt: PROMPT, n: tokens });
        if (r > 0) { n.push(x); b.push(y); }
      }
      node.dispose();
      await browser.page.evaluate(() => window.benchModel.dispose());
      const m = (a, k) => median(a.map((v) => v[k]));
      rows.push({ precision, threads, nodeBuild: node.info.build, nodeThreads: node.info.threads, ...info,
        nodePrefill: m(n, 'prefill'), pagePrefill: m(b, 'prefill'), nodeDecode: m(n, 'decode'), pageDecode: m(b, 'decode') });
      process.stderr.write(`${precision} ${threads}t done\n`);
    }
  }
} finally {
  await browser.close();
  await server.close();
}

const f = (v) => v.toFixed(1);
console.log(`${new Date().toISOString().slice(0, 16)} UTC, ${os.cpus()[0].model}, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ` +
  `page cross-origin isolated: ${isolated}; ${rel}, 64-token prompt, ${tokens} greedy tokens, median of ${rounds}\n`);
console.log('| precision | threads (Node / page) | prefill tok/s Node / page | decode tok/s Node / page | page / Node decode |');
console.log('|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.precision} | ${r.nodeThreads} ${r.nodeBuild} / ${r.threads} ${r.build} | ${f(r.nodePrefill)} / ${f(r.pagePrefill)} | ` +
    `${f(r.nodeDecode)} / ${f(r.pageDecode)} | ${(r.pageDecode / r.nodeDecode).toFixed(2)}x |`);
}
