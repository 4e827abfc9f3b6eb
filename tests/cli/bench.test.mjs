// The benchmark (`npm run bench`, scripts/bench.mjs, and the native `gpt2 bench`) on the tiny
// fixture with tiny sizes (--smoke): the table has every row and column and each measured
// number is positive. Never a timing threshold. Uses the builds tests/run.sh made (build/,
// dist/; or GPT2_NATIVE_BUILD / GPT2_WASM_DIST).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const script = join(root, 'scripts', 'bench.mjs');
const gpt2 = join(resolve(root, process.env.GPT2_NATIVE_BUILD || 'build'), 'gpt2');
const NUMBERS = ['load_s', 'prefill1_tps', 'prefill2_tps', 'decode_tps', 'decode_ctx_tps', 'ttft_s', 'rss_bytes',
  'stream_s', 'weights_bytes', 'file_bytes', 'threads'];

function bench(args) {
  const r = spawnSync(process.execPath, [script, '--smoke', '--no-build', ...args], { cwd: root, encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `bench failed: ${r.stderr}`);
  return r.stdout;
}

test('npm run bench --smoke --json: every build x precision measured, all numbers positive', () => {
  const out = JSON.parse(bench(['--json', '--builds', 'native,wasm,wasm-mt', '--train', 'none']));
  const want = [];
  for (const b of ['native', 'wasm', 'wasm-mt']) for (const p of ['f32', 'f16', 'q8_0']) want.push(`${b}/${p}`);
  assert.deepEqual(out.rows.map((r) => `${r.build}/${r.precision}`), want);
  for (const r of out.rows) {
    const name = `${r.build}/${r.precision}`;
    assert.equal(r.na, undefined, `${name} not measured: ${r.na}`);
    for (const k of NUMBERS) assert.ok(typeof r[k] === 'number' && r[k] > 0, `${name}: ${k} = ${r[k]}`);
    if (r.build === 'wasm-mt') assert.ok(r.threads > 1, `${name}: ${r.threads} thread(s)`);
    else assert.equal(r.threads, 1, name);
  }
});

test('npm run bench --smoke: one table with the columns, and n/a rows for unknown builds', () => {
  const lines = bench(['--builds', 'native,wasm', '--precisions', 'f32,q8_0', '--train', 'none']).split('\n');
  const head = lines.findIndex((l) => l.startsWith('| build |'));
  assert.ok(head >= 0, 'a table header');
  const cols = lines[head].split('|').slice(1, -1).map((c) => c.trim());
  for (const c of ['build', 'threads', 'precision', 'load s', 'peak RSS MB', 'stream weights ms', 'decode % of roofline'])
    assert.ok(cols.includes(c), `column ${c} in ${cols}`);
  assert.ok(cols.some((c) => /^prefill \d+ tok\/s$/.test(c)) && cols.filter((c) => c.startsWith('prefill')).length === 2);
  assert.ok(cols.some((c) => c.startsWith('decode tok/s (')) && cols.some((c) => c.startsWith('decode tok/s @')));
  assert.ok(cols.some((c) => c.startsWith('first token ms')));
  const rows = lines.slice(head + 2).filter((l) => l.startsWith('|'));
  assert.equal(rows.length, 4);
  for (const row of rows) {
    const cells = row.split('|').slice(1, -1).map((c) => c.trim());
    assert.equal(cells.length, cols.length, row);
    for (const c of cells.slice(3, -1)) assert.ok(Number(c) > 0, `positive number in ${row}: '${c}'`);
    assert.match(cells.at(-1), /^\d+%$/);
  }
});

test('gpt2 bench --smoke (native): the same table, wasm rows point to npm run bench', () => {
  const r = spawnSync(gpt2, ['bench', '--smoke', '--builds', 'native,wasm', '--precisions', 'f32'], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.split('\n').filter((l) => /^\| (native|wasm) /.test(l));
  assert.equal(rows.length, 2);
  assert.match(rows[1], /n\/a \(WebAssembly rows: npm run bench\)/);
  const cells = rows[0].split('|').slice(1, -1).map((c) => c.trim());
  assert.equal(cells.length, 14);
  for (const c of cells.slice(3, -1)) assert.ok(Number(c) > 0, `positive number in ${rows[0]}: '${c}'`);
  const json = JSON.parse(spawnSync(gpt2, ['bench', '--smoke', '--json', '--precisions', 'q8_0'], { encoding: 'utf8' }).stdout);
  assert.equal(json.length, 1);
  assert.ok(json[0].decode_tps > 0 && json[0].stream_s > 0 && json[0].rss_bytes > 0);
});

test('npm run bench --smoke --train-only: the training table, native, WASM 1 and 2 threads (and PyTorch when present)', () => {
  const torch = spawnSync('/usr/bin/python3', ['-c', 'import torch, numpy']).status === 0;
  const out = JSON.parse(bench(['--json', '--train-only', '--train-steps', '2']));
  assert.deepEqual(out.rows, []);
  assert.equal(out.training.length, 1);
  const t = out.training[0];
  assert.deepEqual([t.shape, t.batch, t.seq, t.steps], ['tiny', 2, 16, 2]);
  for (const k of ['native 1t', 'WASM 1t', 'WASM 2t', ...(torch ? ['PyTorch 1t', 'PyTorch 2t'] : [])]) {
    assert.equal(t[k].na, undefined, `${k}: ${t[k].na}`);
    assert.ok(t[k].tokens_per_second > 0, `${k}: ${t[k].tokens_per_second}`);
  }
  assert.equal(t['WASM 2t'].threads, 2);
  assert.ok(t['WASM 1t'].wasm_bytes > 0);
  if (torch) assert.deepEqual([t['PyTorch 1t'].threads, t['PyTorch 2t'].threads, t['PyTorch 2t'].batch, t['PyTorch 2t'].seq], [1, 2, 2, 16]);
  else assert.match(t['PyTorch 1t'].na, /no python3-torch/);
  const text = bench(['--train-only', '--train-steps', '1']).split('\n');
  const head = text.findIndex((l) => l.startsWith('| shape |'));
  assert.ok(head >= 0, text.join('\n'));
  assert.match(text[head], /\| native 1t \| WASM 1t \| WASM 2t \| PyTorch 1t \| PyTorch 2t \|/);
  assert.match(text[head + 2], /^\| tiny \| \d/);
});

test('scripts/bench/speculative.mjs on the fixture: both builds measured, the draft gives the same tokens', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'bench', 'speculative.mjs'), '--rows', 'smoke', '--cache', join(root, 'tests', 'fixtures'),
    '--builds', 'native,wasm', '--runs', '1', '--tokens', '20', '--draft-tokens', '1,3', '--json'], { cwd: root, encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.results.map((x) => x.build), ['native', 'wasm']);
  for (const x of out.results) {
    assert.equal(x.error, undefined, `${x.build}: ${x.error}`);
    assert.ok(x.plain_tps > 0 && x.load_s >= 0 && x.draft_precision === 'q8_0', JSON.stringify(x));
    assert.deepEqual(x.draft.map((e) => e.k), [1, 3]);
    for (const e of x.draft) {
      assert.equal(e.same, true, `${x.build} k ${e.k}: tokens differ from the plain run`);
      assert.ok(e.tps > 0 && e.ratio > 0 && e.accepted >= 0 && e.accepted <= e.proposed && e.proposed > 0, JSON.stringify(e));
    }
  }
});
