// model.finetune() and model.save() (js/finetune.js over src/train.c in WebAssembly): the losses
// of the float64 reference (tests/fixtures/*/expected_train.json), the same float32 losses as
// the native CLI bit for bit, the trained weights in the model, save -> load with equal logits,
// abort at a step boundary, and bad input refused with the model unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from '../../js/index.js';
import { assertAbortError, assertGpt2Error, fixture, native } from './helpers/common.mjs';

const ref = (name) => JSON.parse(readFileSync(join(fixture(name), 'expected_train.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'gpt2-js-finetune-'));

async function collect(it) {
  const out = [];
  for await (const s of it) out.push(s);
  return out;
}

const runOptions = (r) => ({
  steps: r.steps, batch: r.B, seq: r.T, lr: r.lr, optimizer: r.opt, weightDecay: r.wd, gradClip: r.clip,
  beta1: r.betas[0], beta2: r.betas[1], eps: r.eps,
});

for (const name of ['tiny-f32', 'tiny-f16', 'tiny-bf16']) {
  test(`${name}: 20 SGD and 20 AdamW steps give the reference's losses`, async () => {
    const r = ref(name);
    for (const [run, tol] of [['sgd', 1e-4], ['adamw', 1e-3]]) {
      const model = await load(fixture(name));
      try {
        const steps = await collect(model.finetune(r.ids, runOptions(r.runs[run])));
        assert.equal(steps.length, 20);
        steps.forEach((s, i) => {
          assert.equal(s.step, i + 1);
          assert.ok(Math.abs(s.loss - r.runs[run].losses[i]) <= tol, `${run} step ${i + 1}: ${s.loss} vs ${r.runs[run].losses[i]}`);
          assert.ok(s.tokensPerSecond > 0);
        });
      } finally {
        model.dispose();
      }
    }
  });
}

test('WebAssembly and native training give the same float32 losses, bit for bit', async () => {
  const r = ref('tiny-f32');
  const text = spawnSync(native, ['detokenize', '--model', fixture(), '--ids', r.ids.join(' ')]).stdout.toString();
  const data = join(work, 'text.txt');
  writeFileSync(data, text);
  const args = ['finetune', '--model', fixture(), '--data', data, '--out', join(work, 'native'), '--json',
    '--steps', '6', '--batch', '2', '--seq', '32', '--lr', '0.001', '--shuffle', '5', '--weight-decay', '0.01'];
  const cli = spawnSync(native, args);
  assert.equal(cli.status, 0, cli.stderr.toString());
  const nativeLosses = cli.stdout.toString().trim().split('\n').map((l) => Math.fround(JSON.parse(l).loss));
  const model = await load(fixture());
  try {
    const steps = await collect(model.finetune(text, { steps: 6, batch: 2, seq: 32, lr: 0.001, shuffle: 5, weightDecay: 0.01 }));
    assert.deepEqual(steps.map((s) => s.loss), nativeLosses);
    // the saved models are the same bytes
    const files = await model.save();
    assert.ok(Buffer.from(files['model.safetensors']).equals(readFileSync(join(work, 'native', 'model.safetensors'))));
  } finally {
    model.dispose();
  }
});

test('the threaded build trains bit for bit as the single-thread one', async () => {
  const r = ref('tiny-f32');
  const one = await load(fixture(), { threads: 1 }), two = await load(fixture(), { threads: 2 });
  try {
    assert.equal(one.info.build, 'wasm-simd');
    assert.equal(two.info.build, 'wasm-simd-threads');
    const opts = { steps: 3, batch: 3, seq: 32, lr: 1e-3, shuffle: 1 };
    const a = await collect(one.finetune(r.ids, opts)), b = await collect(two.finetune(r.ids, opts));
    assert.deepEqual(b.map((s) => s.loss), a.map((s) => s.loss));
    const fa = await one.save(), fb = await two.save();
    assert.ok(Buffer.from(fa['model.safetensors']).equals(Buffer.from(fb['model.safetensors'])));
  } finally {
    one.dispose();
    two.dispose();
  }
});

test('the model in memory is the fine-tuned one; save() -> load() gives its logits exactly', async () => {
  const r = ref('tiny-f32');
  const model = await load(fixture());
  try {
    const probe = r.ids.slice(0, 20);
    const before = model.logits(probe);
    const steps = await collect(model.finetune(r.ids, { steps: 3, batch: 2, seq: 16, lr: 1e-2 }));
    assert.equal(steps.length, 3);
    const after = model.logits(probe);
    assert.notDeepEqual(after, before);
    const files = await model.save();
    assert.deepEqual(Object.keys(files).sort(), ['config.json', 'merges.txt', 'model.safetensors', 'vocab.json']);
    const again = await load(files);
    try {
      assert.deepEqual(again.logits(probe), after);
    } finally {
      again.dispose();
    }
    const paths = await model.save(join(work, 'saved'));
    assert.equal(paths.length, 4);
    const fromDisk = await load(join(work, 'saved'));
    try {
      assert.deepEqual(fromDisk.logits(probe), after);
    } finally {
      fromDisk.dispose();
    }
  } finally {
    model.dispose();
  }
});

test('held-out loss every evalEvery steps and at the end', async () => {
  const r = ref('tiny-f32');
  const model = await load(fixture());
  try {
    const steps = await collect(model.finetune(r.ids, { steps: 5, batch: 2, seq: 16, valFraction: 0.2, evalEvery: 2 }));
    assert.deepEqual(steps.filter((s) => s.valLoss !== undefined).map((s) => s.step), [2, 4, 5]);
    for (const s of steps.filter((x) => x.valLoss !== undefined)) assert.ok(s.valLoss > 0 && Number.isFinite(s.valLoss));
  } finally {
    model.dispose();
  }
});

test('abort stops at a step boundary with the steps done written into the model', async () => {
  const r = ref('tiny-f32');
  const probe = r.ids.slice(0, 20);
  const opts = { batch: 2, seq: 16, lr: 1e-2 };
  const model = await load(fixture()), two = await load(fixture());
  try {
    const ac = new AbortController();
    let seen = 0;
    await assertAbortError(async () => {
      for await (const s of model.finetune(r.ids, { ...opts, steps: 10, signal: ac.signal })) {
        seen = s.step;
        if (s.step === 2) ac.abort();
      }
    });
    assert.equal(seen, 2);
    await collect(two.finetune(r.ids, { ...opts, steps: 2 }));
    assert.deepEqual(model.logits(probe), two.logits(probe));
  } finally {
    model.dispose();
    two.dispose();
  }
});

test('bad input is refused before any step, the model unchanged', async () => {
  const r = ref('tiny-f32');
  const model = await load(fixture());
  try {
    const probe = r.ids.slice(0, 20);
    const before = model.logits(probe);
    const run = (data, o) => collect(model.finetune(data, { steps: 2, batch: 2, seq: 16, ...o }));
    await assertGpt2Error(() => run('', {}), 'arg', /empty/);
    await assertGpt2Error(() => run([], {}), 'arg', /empty/);
    await assertGpt2Error(() => run('A short text.', {}), 'arg', /shorter than one window/);
    await assertGpt2Error(() => run(r.ids, { seq: 65 }), 'range', /seq must be in 1\.\.64/);
    await assertGpt2Error(() => run(r.ids, { batch: 2 ** 32 + 2 }), 'range', /batch must be at most 2147483647, got 4294967298/);
    await assertGpt2Error(() => run(r.ids, { lr: 0 }), 'arg', /lr must be/);
    await assertGpt2Error(() => run(r.ids, { lr: -1 }), 'arg', /lr must be/);
    await assertGpt2Error(() => run(r.ids, { lr: NaN }), 'arg', /lr must be a number/);
    await assertGpt2Error(() => run(r.ids, { learningRate: 1 }), 'arg', /unknown option 'learningRate'/);
    await assertGpt2Error(() => run(r.ids, { optimizer: 'adam' }), 'arg', /adamw/);
    await assertGpt2Error(() => run([1, 2, 99999], {}), 'range', /outside the vocabulary/);
    assert.deepEqual(model.logits(probe), before, 'refused before any step: the model is unchanged');
    // a learning rate that makes the loss overflow stops training with the reason; the steps
    // before it are in the model, which stays usable
    await assertGpt2Error(() => run(r.ids, { optimizer: 'sgd', lr: 1e30, gradClip: 0, steps: 5 }), 'range',
      /loss is (NaN|infinite)|gradient norm is not finite/);
    assert.equal(model.logits(probe).length, model.config.nVocab);
  } finally {
    model.dispose();
  }
});

test('checkpointEvery + resume: the same losses and weights as one run, bit for bit; bad checkpoints refused', async () => {
  const r = ref('tiny-f32');
  const opts = { steps: 6, batch: 2, seq: 16, lr: 1e-3, shuffle: 5 };
  const whole = await load(fixture('tiny-f32'));
  const part = await load(fixture('tiny-f32'));
  const other = await load(fixture('tiny-bf16'));
  try {
    const a = await collect(whole.finetune(r.ids, { ...opts, checkpointEvery: 4 }));
    assert.deepEqual(a.map((s) => s.checkpoint !== undefined), [false, false, false, true, false, true]);
    // the checkpoint bytes: magic, version 2, and the step count
    const ck = Buffer.from(a[3].checkpoint);
    assert.equal(ck.subarray(0, 8).toString('latin1'), 'GPT2TRN1');
    assert.equal(ck.readUInt32LE(8), 2);
    assert.equal(ck.readBigInt64LE(16), 4n);
    const probe = r.ids.slice(0, 40);
    const before = part.logits(probe);
    // refused before any step, the model unchanged
    const bad = [
      [{ resume: a[3].checkpoint.subarray(0, 100) }, 'format', /checkpoint has 100 bytes/],
      [{ resume: new Uint8Array(200) }, 'format', /not a fine-tuning checkpoint/],
      [{ resume: a[3].checkpoint, optimizer: 'sgd' }, 'arg', /made with the adamw optimizer/],
      [{ resume: [1, 2, 3] }, 'arg', /resume must be the bytes of a checkpoint/],
    ];
    for (const [extra, code, pattern] of bad) {
      await assert.rejects(collect(part.finetune(r.ids, { ...opts, ...extra })), (e) => e.code === code && pattern.test(e.message));
      assert.deepEqual(part.logits(probe), before);
    }
    const otherBefore = other.logits(probe);
    await assert.rejects(collect(other.finetune(r.ids, { ...opts, resume: a[3].checkpoint })),
      (e) => e.code === 'shape' && /another model: 2 layers.*this model has 3, 3, 48/.test(e.message));
    assert.deepEqual(other.logits(probe), otherBefore);
    // resume from step 4: steps 5 and 6 as in the whole run
    const b = await collect(part.finetune(r.ids, { ...opts, resume: a[3].checkpoint, checkpointEvery: 1 }));
    assert.deepEqual(b.map((s) => [s.step, s.loss, s.gradNorm]), a.slice(4).map((s) => [s.step, s.loss, s.gradNorm]));
    assert.deepEqual(part.logits(probe), whole.logits(probe));
    assert.ok(Buffer.from(b[1].checkpoint).equals(Buffer.from(a[5].checkpoint)), 'the final checkpoints are equal');
    // a checkpoint at the total: no step, the model becomes the checkpoint's
    const fresh = await load(fixture('tiny-f32'));
    try {
      assert.deepEqual(await collect(fresh.finetune(r.ids, { ...opts, resume: a[5].checkpoint })), []);
      assert.deepEqual(fresh.logits(probe), whole.logits(probe));
    } finally {
      fresh.dispose();
    }
  } finally {
    whole.dispose();
    part.dispose();
    other.dispose();
  }
});
