// `gpt2 finetune` (native CLI, built into build/): the losses of the float64 reference
// (tests/fixtures/*/expected_train.json), a saved folder that loads, --resume repeating an
// uninterrupted run byte for byte (native, gpt2-wasm, and each resuming the other's checkpoint),
// and bad input refused before anything is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'build', 'gpt2');
const fixture = join(root, 'tests', 'fixtures', 'tiny-f32');
const ref = JSON.parse(readFileSync(join(fixture, 'expected_train.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'gpt2-finetune-'));

function gpt2(args) {
  const r = spawnSync(cli, args, { timeout: 120000 });
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

// The reference's training text: its ids decoded (they tokenize back to the same ids).
const text = gpt2(['detokenize', '--model', fixture, '--ids', ref.ids.join(' ')]).stdout;
const data = join(work, 'text.txt');
writeFileSync(data, text);

function steps(stdout) {
  return stdout.trim().split('\n').map((l) => JSON.parse(l));
}

test('the training text tokenizes to the reference ids', () => {
  const r = spawnSync(cli, ['tokenize', '--model', fixture], { input: text });
  assert.deepEqual(r.stdout.toString().trim().split(' ').map(Number), ref.ids);
});

for (const name of ['sgd', 'adamw']) {
  test(`${name}: 20 steps give the float64 reference's losses`, () => {
    const run = ref.runs[name];
    const out = join(work, `out-${name}`);
    const r = gpt2(['finetune', '--model', fixture, '--data', data, '--out', out, '--json', '--threads', '1',
      '--steps', String(run.steps), '--batch', String(run.B), '--seq', String(run.T), '--lr', String(run.lr),
      '--optimizer', run.opt, '--weight-decay', String(run.wd), '--grad-clip', String(run.clip),
      '--beta1', String(run.betas[0]), '--beta2', String(run.betas[1]), '--eps', String(run.eps)]);
    assert.equal(r.status, 0, r.stderr);
    const got = steps(r.stdout);
    assert.equal(got.length, run.steps);
    const tol = name === 'sgd' ? 1e-4 : 1e-3;
    got.forEach((s, i) => {
      assert.equal(s.step, i + 1);
      assert.ok(Math.abs(s.loss - run.losses[i]) <= tol, `step ${i + 1}: ${s.loss} vs ${run.losses[i]}`);
      assert.ok(s.tokens_per_second > 0 && s.elapsed >= 0);
    });
    assert.deepEqual(readdirSync(out).sort(),
      ['config.json', 'finetune-state.bin', 'merges.txt', 'model.safetensors', 'vocab.json']);
    // the saved folder is a model: it loads and scores the text lower than the original
    const prompt = gpt2(['detokenize', '--model', fixture, '--ids', ref.ids.slice(0, 60).join(' ')]).stdout;
    const score = (dir) => {
      const s = gpt2(['score', '--model', dir, '--prompt', prompt]);
      assert.equal(s.status, 0, s.stderr);
      return Number(/perplexity\s+([0-9.]+)/.exec(s.stdout)?.[1]);
    };
    const before = score(fixture), after = score(out);
    assert.ok(after < before, `perplexity ${after} after, ${before} before`);
  });
}

test('--resume continues to the same losses and the same bytes as one run', () => {
  const common = ['--model', fixture, '--data', data, '--json', '--batch', '2', '--seq', '16', '--lr', '1e-3',
    '--shuffle', '7', '--val-fraction', '0.2', '--eval-every', '3'];
  const whole = gpt2(['finetune', ...common, '--out', join(work, 'whole'), '--steps', '8']);
  assert.equal(whole.status, 0, whole.stderr);
  const part = gpt2(['finetune', ...common, '--out', join(work, 'part'), '--steps', '5']);
  assert.equal(part.status, 0, part.stderr);
  const rest = gpt2(['finetune', ...common, '--out', join(work, 'part'), '--steps', '8', '--resume']);
  assert.equal(rest.status, 0, rest.stderr);
  const a = steps(whole.stdout), b = [...steps(part.stdout), ...steps(rest.stdout)];
  assert.deepEqual(b.map((s) => [s.step, s.loss]), a.map((s) => [s.step, s.loss]));
  // held-out loss every 3 steps and at the end of each run (the partial run's end is step 5)
  assert.deepEqual(a.filter((s) => s.val_loss !== undefined).map((s) => s.step), [3, 6, 8]);
  assert.deepEqual(b.filter((s) => s.val_loss !== undefined).map((s) => s.step), [3, 5, 6, 8]);
  for (const s of a.filter((x) => x.val_loss !== undefined))
    assert.equal(b.find((x) => x.step === s.step).val_loss, s.val_loss);
  for (const f of ['model.safetensors', 'config.json', 'finetune-state.bin'])
    assert.ok(readFileSync(join(work, 'whole', f)).equals(readFileSync(join(work, 'part', f))), f);
});

test('threads give the same losses bit for bit', () => {
  const common = ['finetune', '--model', fixture, '--data', data, '--json', '--batch', '3', '--seq', '32',
    '--steps', '3', '--force'];
  const one = gpt2([...common, '--out', join(work, 't1'), '--threads', '1']);
  const three = gpt2([...common, '--out', join(work, 't3'), '--threads', '3']);
  assert.equal(one.status, 0, one.stderr);
  assert.deepEqual(steps(three.stdout).map((s) => s.loss), steps(one.stdout).map((s) => s.loss));
  assert.ok(readFileSync(join(work, 't1', 'model.safetensors')).equals(readFileSync(join(work, 't3', 'model.safetensors'))));
});

test('gpt2-wasm finetune: the same losses and the same saved bytes as the native tool', () => {
  const wasmCli = join(root, 'js', 'node', 'cli.js');
  const args = ['finetune', '--model', fixture, '--data', data, '--json', '--batch', '2', '--seq', '32', '--steps', '4',
    '--lr', '2e-3', '--shuffle', '3', '--val-fraction', '0.3', '--eval-every', '2', '--save-dtype', 'f16'];
  const a = gpt2([...args, '--out', join(work, 'cmp-native')]);
  assert.equal(a.status, 0, a.stderr);
  const r = spawnSync(process.execPath, [wasmCli, ...args, '--out', join(work, 'cmp-wasm')], { timeout: 120000 });
  assert.equal(r.status, 0, r.stderr.toString());
  const pick = (stdout) => steps(stdout).map((s) => [s.step, Math.fround(s.loss), s.val_loss === undefined ? null : Math.fround(s.val_loss)]);
  assert.deepEqual(pick(r.stdout.toString()), pick(a.stdout));
  for (const f of ['model.safetensors', 'config.json', 'vocab.json', 'merges.txt'])
    assert.ok(readFileSync(join(work, 'cmp-wasm', f)).equals(readFileSync(join(work, 'cmp-native', f))), f);
  const bad = spawnSync(process.execPath, [wasmCli, ...args, '--out', join(work, 'cmp-wasm')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr.toString(), /already holds a model: pass --force/);
  const resume = spawnSync(process.execPath, [wasmCli, ...args, '--out', join(work, 'x'), '--resume']);
  assert.equal(resume.status, 2);
  assert.match(resume.stderr.toString(), /--resume: \S+ holds no finetune-state\.bin/);
});

function wasm(args) {
  const r = spawnSync(process.execPath, [join(root, 'js', 'node', 'cli.js'), ...args], { timeout: 120000 });
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}
const same = (a, b, f) => readFileSync(join(a, f)).equals(readFileSync(join(b, f)));

test('gpt2-wasm finetune --resume: the same losses and bytes as one run, and as the native tool', () => {
  const common = ['finetune', '--model', fixture, '--data', data, '--json', '--batch', '2', '--seq', '16', '--lr', '1e-3',
    '--shuffle', '7', '--val-fraction', '0.2', '--eval-every', '3'];
  const dir = (n) => join(work, `wr-${n}`);
  const whole = wasm([...common, '--out', dir('whole'), '--steps', '8']);
  assert.equal(whole.status, 0, whole.stderr);
  const part = wasm([...common, '--out', dir('part'), '--steps', '5', '--save-every', '2']);
  assert.equal(part.status, 0, part.stderr);
  const rest = wasm([...common, '--out', dir('part'), '--steps', '8', '--resume']);
  assert.equal(rest.status, 0, rest.stderr);
  const a = steps(whole.stdout), b = [...steps(part.stdout), ...steps(rest.stdout)];
  assert.equal(a.length, 8);
  assert.deepEqual(b.map((s) => [s.step, s.loss]), a.map((s) => [s.step, s.loss]));
  for (const s of a.filter((x) => x.val_loss !== undefined)) assert.equal(b.find((x) => x.step === s.step).val_loss, s.val_loss);
  for (const f of ['model.safetensors', 'config.json', 'finetune-state.bin']) assert.ok(same(dir('whole'), dir('part'), f), f);
  // the checkpoint records 8 steps done (header: magic, version, optimizer, then the i64 step count)
  assert.equal(readFileSync(join(dir('whole'), 'finetune-state.bin')).readBigInt64LE(16), 8n);
  // the native tool: 5 steps, then gpt2-wasm resumes to 8: the native uninterrupted run's bytes
  const nat = gpt2([...common, '--out', dir('native5'), '--steps', '5']);
  assert.equal(nat.status, 0, nat.stderr);
  const nat8 = gpt2([...common, '--out', dir('native8'), '--steps', '8']);
  assert.equal(nat8.status, 0, nat8.stderr);
  const mixed = wasm([...common, '--out', dir('native5'), '--steps', '8', '--resume']);
  assert.equal(mixed.status, 0, mixed.stderr);
  assert.deepEqual(steps(mixed.stdout).map((s) => [s.step, s.loss]), a.slice(5).map((s) => [s.step, s.loss]));
  for (const f of ['model.safetensors', 'finetune-state.bin']) {
    assert.ok(same(dir('native8'), dir('native5'), f), `native 5 + wasm 3: ${f}`);
    assert.ok(same(dir('native8'), dir('whole'), f), `native 8 vs wasm 8: ${f}`);
  }
  // and the other way: the native tool resumes gpt2-wasm's checkpoint
  const w5 = wasm([...common, '--out', dir('wasm5'), '--steps', '5']);
  assert.equal(w5.status, 0, w5.stderr);
  const n3 = gpt2([...common, '--out', dir('wasm5'), '--steps', '8', '--resume']);
  assert.equal(n3.status, 0, n3.stderr);
  assert.ok(same(dir('native8'), dir('wasm5'), 'finetune-state.bin'), 'wasm 5 + native 3');
  // resuming at the total already reached: no step, the same files again
  const none = wasm([...common, '--out', dir('whole'), '--steps', '8', '--resume']);
  assert.equal(none.status, 0, none.stderr);
  assert.equal(none.stdout, '');
  assert.ok(same(dir('whole'), dir('native8'), 'model.safetensors'));
});

test('gpt2-wasm finetune --save-every: the last good step is on disk when training stops', () => {
  // SGD with a huge learning rate: step 1 is finite, step 2's loss overflows
  const args = (out) => ['finetune', '--model', fixture, '--data', data, '--out', out, '--optimizer', 'sgd', '--lr', '1e30',
    '--grad-clip', '0', '--steps', '5', '--save-every', '1', '--batch', '2', '--seq', '16'];
  const w = wasm(args(join(work, 'se-wasm'))), n = gpt2(args(join(work, 'se-native')));
  assert.equal(w.status, 1, w.stderr);
  assert.equal(n.status, 1, n.stderr);
  assert.match(w.stderr, /loss is (NaN|infinite)|gradient norm is not finite/);
  const state = readFileSync(join(work, 'se-wasm', 'finetune-state.bin'));
  assert.equal(state.readBigInt64LE(16), 1n);
  for (const f of ['model.safetensors', 'finetune-state.bin']) assert.ok(same(join(work, 'se-wasm'), join(work, 'se-native'), f), f);
});

test('gpt2-wasm finetune --resume: bad checkpoints are refused and nothing changes', () => {
  const good = join(work, 'wr-whole'); // made by the test above: tiny-f32, AdamW, 8 steps
  const bad = join(work, 'wr-bad');
  mkdirSync(bad, { recursive: true });
  const base = ['finetune', '--data', data, '--out', bad, '--steps', '9', '--resume', '--batch', '2', '--seq', '16'];
  const files = () => Object.fromEntries(readdirSync(bad).map((f) => [f, readFileSync(join(bad, f))]));
  const cases = [
    // damaged: not a checkpoint, truncated
    [Buffer.from('not a checkpoint at all, but long enough to have a header'), [], /not a fine-tuning checkpoint/],
    [readFileSync(join(good, 'finetune-state.bin')).subarray(0, 1000), [], /checkpoint has 1000 bytes, expected/],
    // another model's (tiny-f32's checkpoint for the tiny-bf16 model: 3 layers, not 2)
    [readFileSync(join(good, 'finetune-state.bin')), ['--model', join(root, 'tests', 'fixtures', 'tiny-bf16')],
      /checkpoint is of another model: 2 layers, 4 heads, width 64.*this model has 3, 3, 48/],
    // another optimizer
    [readFileSync(join(good, 'finetune-state.bin')), ['--optimizer', 'sgd'], /made with the adamw optimizer/],
  ];
  for (const [state, extra, pattern] of cases) {
    writeFileSync(join(bad, 'finetune-state.bin'), state);
    const before = files();
    const r = wasm([...base, '--model', fixture, ...extra]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, pattern);
    assert.equal(r.stdout, '');
    assert.deepEqual(files(), before, 'the folder changed');
    // the native tool refuses the same checkpoint
    const nr = gpt2([...base, '--model', fixture, ...extra]);
    assert.equal(nr.status, 1, nr.stderr);
    assert.match(nr.stderr, pattern);
  }
});

test('bad input is refused before anything is written', () => {
  const empty = join(work, 'empty.txt'), short = join(work, 'short.txt');
  writeFileSync(empty, '');
  writeFileSync(short, 'A short text.');
  const out = join(work, 'never');
  const base = ['finetune', '--model', fixture, '--out', out, '--steps', '2'];
  const cases = [
    [[...base, '--data', empty], 1, /empty/],
    [[...base, '--data', short, '--seq', '16'], 1, /shorter than one window/],
    [[...base, '--data', data, '--seq', '65'], 1, /seq must be in 1\.\.64/],
    [[...base, '--data', data, '--lr', '0'], 1, /lr must be/],
    [[...base, '--data', data, '--lr', '-1'], 1, /lr must be/],
    [[...base, '--data', data, '--bogus', '1'], 2, /unknown option '--bogus'/],
    [[...base, '--data', data, '--optimizer', 'adam'], 2, /adamw or sgd/],
    [[...base, '--data', data, '--val-fraction', '0.01', '--seq', '32'], 1, /held-out part/],
    [[...base, '--data', data, '--memory-budget', '1M'], 1, /would fit|does not fit|budget/],
    [[...base, '--data', join(work, 'missing.txt')], 1, /cannot open/],
    // a learning rate so large that the loss overflows: stopped with the reason, nothing saved
    [[...base, '--data', data, '--optimizer', 'sgd', '--lr', '1e30', '--grad-clip', '0', '--steps', '5'], 1,
      /loss is (NaN|infinite)|gradient norm is not finite/],
  ];
  for (const [args, status, pattern] of cases) {
    const r = gpt2(args);
    assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trim().split('\n').pop(), pattern, args.join(' '));
    assert.ok(!existsSync(out), `${args.join(' ')} wrote ${out}`);
  }
  // --resume: no checkpoint, or not a checkpoint
  const bad = join(work, 'bad-resume');
  mkdirSync(bad, { recursive: true });
  let r0 = gpt2(['finetune', '--model', fixture, '--data', data, '--out', bad, '--steps', '2', '--resume']);
  assert.equal(r0.status, 2);
  assert.match(r0.stderr, /holds no finetune-state\.bin/);
  writeFileSync(join(bad, 'finetune-state.bin'), 'not a checkpoint at all, but long enough to have a header');
  r0 = gpt2(['finetune', '--model', fixture, '--data', data, '--out', bad, '--steps', '2', '--resume']);
  assert.equal(r0.status, 1);
  assert.match(r0.stderr, /not a fine-tuning checkpoint/);
  assert.deepEqual(readdirSync(bad), ['finetune-state.bin']);
  // --out holding a model: refused without --force, the folder untouched
  const taken = join(work, 'out-sgd');
  const before = statSync(join(taken, 'model.safetensors')).mtimeMs;
  const r = gpt2(['finetune', '--model', fixture, '--data', data, '--out', taken, '--steps', '1']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /already holds a model: pass --force/);
  assert.equal(statSync(join(taken, 'model.safetensors')).mtimeMs, before);
});
