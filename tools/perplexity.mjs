#!/usr/bin/env node
// perplexity.mjs - quality of the weight precisions, measured through the JS API (WebAssembly).
//
//   node tools/perplexity.mjs [--random DIR] [--positions 300] [--windows N] [--heldout FILE]
//
// 1. The embedded model (models/) loaded as f32, f16 and q8_0: perplexity on the held-out
//    text it was not trained on (the last 5% of each of Jane Austen's six novels, see
//    models/README.md), scored in non-overlapping windows of n_ctx = 128 tokens, like the
//    README's figure. The held-out token ids come from tools/train_embedded.py's own split
//    (Python, r-cran-janeaustenr), cached in /tmp/gpt2-wasm-heldout.json.
// 2. With --random DIR (a random-weight checkpoint from
//    `/usr/bin/python3 tools/gpt2_reference.py make --out DIR --layers 12 --embd 768 --heads 12
//    --ctx 1024 --vocab-from models/ --std 0.02`): top-1 agreement of f16 and q8_0 with f32, i.e. the
//    share of positions whose most likely next token is the same, over --positions positions
//    of the held-out text in one sequence.
// --no-embedded skips part 1. Prints a Markdown table (also to --out FILE). Respects
// GPT2_WASM_DIST like the rest of the JS API.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load } from '../js/index.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const heldoutFile = opt('--heldout', '/tmp/gpt2-wasm-heldout.json');
const randomDir = opt('--random', null);
const positions = Number(opt('--positions', 300));
const maxWindows = Number(opt('--windows', Infinity));
const PRECISIONS = ['f32', 'f16', 'q8_0'];

function heldoutIds() {
  if (!existsSync(heldoutFile)) {
    const work = existsSync('/tmp/train') ? '/tmp/train' : '/tmp/gpt2-wasm-train-cache';
    const py = `
import json, sys
sys.path.insert(0, ${JSON.stringify(`${repo}tools`)})
import train_embedded as t
train, val, texts, stats = t.load_tokens(${JSON.stringify(work)}, 0.05)
json.dump([int(x) for x in val], open(${JSON.stringify(heldoutFile)}, "w"))
`;
    execFileSync('/usr/bin/python3', ['-c', py], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return JSON.parse(readFileSync(heldoutFile, 'utf8'));
}

const ids = heldoutIds();
const rows = [];
const embedded = {};
for (const precision of args.includes('--no-embedded') ? [] : PRECISIONS) {
  const model = await load(undefined, { precision });
  const T = model.config.nCtx;
  let total = 0, count = 0, windows = 0;
  const t0 = performance.now();
  for (let at = 0; at + 1 < ids.length && windows < maxWindows; at += T, windows++) {
    const w = ids.slice(at, at + T);
    if (w.length < 2) break;
    const r = model.score(w, { topK: 0 });
    total += r.totalLogprob;
    count += w.length - 1;
  }
  const secs = (performance.now() - t0) / 1000;
  embedded[precision] = { loss: -total / count, ppl: Math.exp(-total / count), count, windows, secs,
    bytes: model.info.weightsBytes, stored: model.info.precision };
  model.dispose();
  process.stderr.write(`embedded ${precision}: perplexity ${embedded[precision].ppl.toFixed(3)} over ${count} tokens, ${secs.toFixed(1)} s\n`);
}

let agreement = null;
if (randomDir) {
  const seq = ids.slice(0, positions + 1);
  agreement = {};
  let ref;
  for (const precision of PRECISIONS) {
    const model = await load(randomDir, { precision });
    const t0 = performance.now();
    const r = model.score(seq, { topK: 1 });
    const top = r.tokens.slice(1).map((t) => t.alternatives[0].id);
    const lps = r.tokens.slice(1).map((t) => t.logprob);
    if (!ref) ref = { top, lps };
    let same = 0, dlp = 0;
    for (let i = 0; i < top.length; i++) {
      same += top[i] === ref.top[i];
      dlp = Math.max(dlp, Math.abs(lps[i] - ref.lps[i]));
    }
    agreement[precision] = { same, n: top.length, dlp, bytes: model.info.weightsBytes, secs: (performance.now() - t0) / 1000 };
    model.dispose();
    process.stderr.write(`random ${precision}: top-1 ${same}/${top.length}, max |dlogprob| ${dlp.toFixed(4)}\n`);
  }
}

const mb = (n) => (n / 1e6).toFixed(1);
if (args.includes('--no-embedded')) {
  for (const p of PRECISIONS) embedded[p] = { bytes: NaN, loss: NaN, ppl: NaN, count: 0, windows: 0 };
}
rows.push('| precision | weights in memory | held-out loss (nats/token) | perplexity |' + (agreement ? ' 124M random: top-1 agreement with f32 | max \\|Δ logprob\\| |' : ''));
rows.push('|---|---|---|---|' + (agreement ? '---|---|' : ''));
for (const p of PRECISIONS) {
  const e = embedded[p];
  let row = `| ${p} | ${mb(e.bytes)} MB | ${e.loss.toFixed(4)} | ${e.ppl.toFixed(2)} |`;
  if (agreement) {
    const a = agreement[p];
    row += ` ${a.same}/${a.n} (${((100 * a.same) / a.n).toFixed(1)}%) | ${a.dlp.toFixed(4)} |`;
  }
  rows.push(row);
}
const e = embedded.f32;
const text = `${rows.join('\n')}\n\nHeld-out: ${e.count} predicted tokens in ${e.windows} windows of 128.` +
  (agreement ? ` Random 124M-shape checkpoint: ${agreement.f32.n} positions of one sequence.` : '') + '\n';
process.stdout.write(text);
if (opt('--out', null)) writeFileSync(opt('--out'), text);
