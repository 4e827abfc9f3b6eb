// Weight precisions through the JS API and both command-line tools: load(..., { precision }),
// model.info.precision / matrixPrecision / weightsBytes, quantized files (tests/fixtures/tiny-q8,
// quantized by the Python reference) against the float64 reference of their dequantized
// weights, on-the-fly q8_0 == quantized file, memory-budget messages naming a precision that
// fits, and `quantize` in gpt2-wasm and gpt2 (same bytes, temp file renamed, clear errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from '../../js/index.js';
import { assertGpt2Error, expected, fixture, maxAbsDiff, native as defaultNative, root } from './helpers/common.mjs';

const TOL = 1e-4;
const TOL_Q8 = 0.25; // int8 activations in the q8_0 kernels; see tests/unit/test_model.c
const cli = join(root, 'js', 'node', 'cli.js');
const native = process.env.GPT2_NATIVE || defaultNative;
const tmp = () => mkdtempSync(join(tmpdir(), 'gpt2-prec-test-'));
const argmax = (a) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

test('tiny-q8 (quantized file) loads as q8_0 and matches the reference of its dequantized weights', async () => {
  const exp = expected('tiny-q8');
  const model = await load(fixture('tiny-q8'));
  try {
    assert.equal(model.info.precision, 'q8_0');
    assert.deepEqual({ ...model.info.matrixPrecision },
      { wte: 'q8_0', lmHead: 'q8_0', qkv: 'q8_0', attnProj: 'q8_0', fc: 'q8_0', mlpProj: 'q8_0' });
    let top1 = 0;
    for (const c of exp.cases) {
      const logits = model.logits(c.ids);
      const d = maxAbsDiff(logits, c.logits_last);
      assert.ok(d <= TOL_Q8, `${c.name}: logits differ by ${d}`);
      if (c.logits_last_margin > 2 * TOL_Q8) {
        assert.equal(argmax(logits), argmax(c.logits_last), `${c.name}: top-1`);
        top1++;
      }
    }
    assert.ok(top1 >= 1, 'top-1 compared at least once');
  } finally {
    model.dispose();
  }
});

test('precision q8_0 quantizes while loading: same logits as the quantized file; f16 and f32 as asked', async () => {
  const ids = expected('tiny-q8').cases[0].ids;
  const file = await load(fixture('tiny-q8'));
  const fly = await load(fixture('tiny-f32'), { precision: 'q8_0' });
  const f16 = await load(fixture('tiny-f32'), { precision: 'f16' });
  const f32 = await load(fixture('tiny-f32'));
  try {
    assert.deepEqual(fly.logits(ids), file.logits(ids), 'bit-identical weights give identical logits');
    assert.equal(fly.info.precision, 'q8_0');
    assert.equal(f16.info.precision, 'f16');
    assert.equal(f32.info.precision, 'f32');
    assert.ok(f16.info.weightsBytes < 0.6 * f32.info.weightsBytes, `${f16.info.weightsBytes} vs ${f32.info.weightsBytes}`);
    assert.ok(fly.info.weightsBytes < f16.info.weightsBytes);
    // f16 storage of F32 weights: close to f32, not equal
    const d = maxAbsDiff(f16.logits(ids), f32.logits(ids));
    assert.ok(d > 0 && d < 0.05, `f16 vs f32: ${d}`);
  } finally {
    for (const m of [file, fly, f16, f32]) m.dispose();
  }
});

test('F16 files are stored as f16 by default and stay within 1e-4 of the reference', async () => {
  const exp = expected('tiny-f16');
  const model = await load(fixture('tiny-f16'));
  try {
    assert.equal(model.info.precision, 'f16');
    for (const c of exp.cases) assert.ok(maxAbsDiff(model.logits(c.ids), c.logits_last) <= TOL, c.name);
  } finally {
    model.dispose();
  }
});

test('a quantized file loaded as f32 holds its dequantized weights: within 1e-4 of the reference', async () => {
  const exp = expected('tiny-q8');
  const model = await load(fixture('tiny-q8'), { precision: 'f32' });
  try {
    assert.equal(model.info.precision, 'f32');
    for (const c of exp.cases) assert.ok(maxAbsDiff(model.logits(c.ids), c.logits_last) <= TOL, c.name);
  } finally {
    model.dispose();
  }
});

test('a bad precision option is a clear error', async () => {
  await assertGpt2Error(() => load(fixture('tiny-f32'), { precision: 'int4' }), 'arg', /precision must be one of 'auto', 'f32', 'f16', 'q8_0'/);
});

test('memoryBudget: the message names a precision that fits', async () => {
  // tiny-f32 needs ~1.35 MB in f32 (weights + KV cache), less in f16 and q8_0
  const e = await assertGpt2Error(() => load(fixture('tiny-f32'), { precision: 'f32', memoryBudget: 700000 }), 'nomem',
    /in f32 \(weights \+ KV cache\) but the memory budget is 700\.0 kB|memory budget/);
  assert.match(e.message, /load with precision '(f16|q8_0)'|no precision fits/);
  const small = await assertGpt2Error(() => load(fixture('tiny-f32'), { memoryBudget: 1000 }), 'nomem', /no precision fits/);
  for (const bad of [-5, 'x', 1.5, NaN]) {
    await assertGpt2Error(() => load(fixture('tiny-f32'), { memoryBudget: bad }), 'arg', /memoryBudget/);
  }
  assert.match(small.message, /even q8_0 needs/);
});

test("precision 'auto': as stored when it fits, else the most precise that fits, and says why", async () => {
  // the f16 need, from the message of an f32 load under a budget too small for f32
  const e = await assertGpt2Error(() => load(fixture('tiny-f32'), { precision: 'f32', memoryBudget: 900000 }), 'nomem',
    /in f16 it needs (\d+) bytes: load with precision 'f16'/);
  const f16Need = Number(/in f16 it needs (\d+) bytes/.exec(e.message)[1]);
  const m16 = await load(fixture('tiny-f32'), { memoryBudget: f16Need });
  assert.equal(m16.info.precision, 'f16');
  assert.match(m16.info.precisionReason, /^auto: f16, because f32 as stored needs 1\.\d MB but the memory budget is \d+ bytes \(f16 needs \d+ bytes\)$/);
  m16.dispose();
  const m32 = await load(fixture('tiny-f32'));
  assert.equal(m32.info.precision, 'f32');
  assert.equal(m32.info.precisionReason, 'auto: f32 as stored (fits the memory budget)'); // WebAssembly's 4 GB
  m32.dispose();
  const q = await load(fixture('tiny-f32'), { precision: 'q8_0' });
  assert.equal(q.info.precisionReason, 'q8_0 as asked');
  q.dispose();
});

function run(args, opts = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { timeout: 60000, ...opts });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test('gpt2-wasm quantize: q8_0 and f16 folders that load, same bytes as the native tool', () => {
  const dir = tmp();
  try {
    const q = join(dir, 'q8');
    const r = run(['quantize', fixture('tiny-f32'), q, '--type', 'q8_0']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /wrote .*model\.safetensors \(\d+ bytes\): 9 weights in q8_0/);
    assert.deepEqual(readdirSync(q).sort(), ['config.json', 'merges.txt', 'model.safetensors', 'vocab.json']);
    const st = readFileSync(join(q, 'model.safetensors'));
    const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString());
    assert.equal(header.__metadata__['gpt2_wasm.quant'], 'q8_0');
    assert.deepEqual(header['h.0.attn.c_attn.weight.q8'].shape, [192, 64]);
    assert.equal(header['h.0.attn.c_attn.weight.scale'].dtype, 'F16');
    assert.deepEqual(header['h.0.attn.c_attn.weight.scale'].shape, [192, 2]);
    const info = run(['info', '--model', q, '-q']);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /precision +q8_0 \(wte q8_0, qkv q8_0/);
    const f = join(dir, 'f16');
    assert.equal(run(['quantize', fixture('tiny-f32'), f, '--type', 'f16', '-q']).status, 0);
    assert.match(run(['info', '--model', f, '-q']).stdout, /precision +f16/);
    if (existsSync(native)) {
      const n = join(dir, 'native');
      const nr = spawnSync(native, ['quantize', fixture('tiny-f32'), n, '--type', 'q8_0'], { timeout: 60000 });
      assert.equal(nr.status, 0, nr.stderr.toString());
      assert.ok(readFileSync(join(n, 'model.safetensors')).equals(st), 'native and WASM write the same bytes');
      const ni = spawnSync(native, ['info', '--model', fixture('tiny-f32'), '--precision', 'q8_0'], { timeout: 60000 });
      assert.match(ni.stdout.toString(), /precision +q8_0/);
      const nb = spawnSync(native, ['info', '--model', fixture('tiny-f32'), '--precision', 'f32', '--memory-budget', '700K']);
      assert.equal(nb.status, 1);
      assert.match(nb.stderr.toString(), /^gpt2: the model needs .* in f32 .*load with precision '(f16|q8_0)'\n$/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('gpt2-wasm quantize: usage errors, bad input, nothing left behind', () => {
  const dir = tmp();
  try {
    let r = run(['quantize', fixture('tiny-f32'), join(dir, 'x')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /quantize needs --type q8_0 or --type f16/);
    r = run(['quantize', fixture('tiny-f32'), join(dir, 'x'), '--type', 'q4']);
    assert.equal(r.status, 2);
    r = run(['quantize', fixture('tiny-f32'), '--type', 'f16']);
    assert.equal(r.status, 2);
    r = run(['info', '--type', 'f16']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--type is an option of quantize/);
    r = run(['quantize', join(dir, 'missing'), join(dir, 'y'), '--type', 'f16']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^gpt2-wasm: cannot open .*missing\/model\.safetensors/);
    // an already quantized folder is refused; no temp file remains
    r = run(['quantize', fixture('tiny-q8'), join(dir, 'z'), '--type', 'q8_0']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already quantized/);
    assert.deepEqual(readdirSync(join(dir, 'z')).filter((f) => f.startsWith('model')), []);
    r = run(['info', '--precision', 'int4']);
    assert.equal(r.status, 2);
    r = run(['info', '-q', '--precision', 'f32', '--memory-budget', '20M']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /load with precision 'f16'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('info.parameters: the tensors in the file counted from its header (attention masks aside), at every precision', async () => {
  const dir = fixture('tiny-f32');
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8'));
  let n = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || /\.attn\.(masked_)?bias$/.test(name)) continue;
    n += t.shape.reduce((a, b) => a * b, 1);
  }
  for (const precision of ['f32', 'f16', 'q8_0']) {
    const model = await load(dir, { precision });
    try {
      assert.equal(model.info.parameters, n, precision);
    } finally {
      model.dispose();
    }
  }
});
