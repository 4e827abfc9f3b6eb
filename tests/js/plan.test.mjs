// planLoad (js/plan.js): what a load will take, before the weights are downloaded. The plan
// must say what load() then does: the same precision and the same words as
// model.info.precisionReason, under the same memory budget, for every fixture dtype; the sizes
// are the files' own; a server that ignores Range still works, bad answers are clear errors.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from '../../js/index.js';
import { planLoad, storedPrecision } from '../../js/plan.js';
import { serveFolder } from './helpers/server.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'tests', 'fixtures');
const FILES = ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors'];

let server;
let base;
before(async () => {
  const { startServer } = await import('../../scripts/serve.mjs'); // answers Range and HEAD
  server = await startServer({ port: 0, host: '127.0.0.1', root: ROOT });
  base = new URL('tests/fixtures/', server.url).href;
});
after(async () => { if (server) await server.close(); });

test('the plan agrees with the load: precision and reason, for each stored dtype and budget', async () => {
  // (tiny-f16 is saved in transformers' layout, with its lm_head.weight)
  const cases = [['tiny-f32', 'f32', false], ['tiny-bf16', 'f32', false], ['tiny-f16', 'f16', true], ['tiny-q8', 'q8_0', false]];
  for (const [name, stored, untied] of cases) {
    const url = `${base}${name}/`;
    const plan = await planLoad(url);
    assert.equal(plan.stored, stored, name);
    assert.equal(plan.untied, untied, name);
    assert.deepEqual(plan.fileBytes, Object.fromEntries(FILES.map((f) => [f, statSync(join(FIXTURES, name, f)).size])));
    assert.equal(plan.downloadBytes, FILES.reduce((a, f) => a + statSync(join(FIXTURES, name, f)).size, 0));
    assert.ok(plan.bytes.f32 > plan.bytes.f16 && plan.bytes.f16 > plan.bytes.q8_0, JSON.stringify(plan.bytes));
    // Budgets: none (what is left of 4 GB), just enough for the stored precision, one byte
    // less (auto falls back), and below everything (nothing fits).
    const budgets = [0, plan.bytes[stored], plan.bytes[stored] - 1, plan.bytes.q8_0 - 1];
    for (const memoryBudget of budgets) {
      for (const precision of ['auto', 'f16', 'q8_0']) {
        const p = await planLoad(url, { memoryBudget, precision });
        const what = `${name} budget ${memoryBudget} ${precision}`;
        let model;
        try {
          model = await load(url, { memoryBudget, precision, threads: 1 });
        } catch (e) {
          assert.equal(p.precision, null, `${what}: the load failed (${e.message}) but the plan said ${p.precision}`);
          assert.equal(p.reason, e.message.replace(/ \(with a separate lm_head\)$/, ''), what);
          continue;
        }
        try {
          assert.equal(p.precision, model.info.precision, what);
          assert.equal(p.reason, model.info.precisionReason, what);
          if (memoryBudget) assert.equal(p.budget, memoryBudget, what);
          assert.ok(p.need <= p.budget, what);
        } finally {
          model.dispose();
        }
      }
    }
  }
});

test('the auto fallback is planned as it loads: f32 over the budget takes f16, and says why', async () => {
  const url = `${base}tiny-f32/`;
  const { bytes } = await planLoad(url);
  const p = await planLoad(url, { memoryBudget: bytes.f32 - 1 });
  assert.equal(p.precision, 'f16');
  assert.equal(p.need, bytes.f16);
  assert.match(p.reason, /^auto: f16, because f32 as stored needs .* but the memory budget is .* \(f16 needs .*\)$/);
});

test('a server without Range answers, 404s and files that are not safetensors', async () => {
  const plain = await serveFolder(join(FIXTURES, 'tiny-f16')); // 200 with the whole body, no Range
  try {
    const p = await planLoad(plain.url('normal'));
    assert.equal(p.stored, 'f16');
    assert.equal(p.fileBytes['model.safetensors'], statSync(join(FIXTURES, 'tiny-f16', 'model.safetensors')).size);
    await assert.rejects(planLoad(plain.url('404')), (e) => e.code === 'io' && /model\.safetensors: HTTP 404 \(not found\)/.test(e.message));
  } finally {
    await plain.close();
  }
  // config.json served as model.safetensors: its first 8 bytes are not a header length.
  const bad = { fetch: (u, init) => fetch(String(u).replace(/model\.safetensors$/, 'config.json'), init) };
  await assert.rejects(planLoad(`${base}tiny-f32/`, bad), (e) => e.code === 'format' && /not a safetensors file/.test(e.message));
  await assert.rejects(planLoad(`${base}tiny-f32/`, { precision: 'f64' }), (e) => e.code === 'arg');
});

test('storedPrecision: the dtype of most matrix elements, and a separate lm_head', () => {
  const t = (dtype, shape) => ({ dtype, shape, data_offsets: [0, 0] });
  assert.deepEqual(storedPrecision({ 'wte.weight': t('F16', [10, 4]), 'h.0.mlp.c_fc.weight': t('F32', [4, 16]), 'ln_f.weight': t('F32', [4]) }),
    { stored: 'f32', untied: false });
  assert.deepEqual(storedPrecision({
    'wte.weight.q8': t('I8', [10, 32]), 'wte.weight.scale': t('F16', [10, 1]), 'h.0.mlp.c_fc.weight.q8': t('I8', [32, 128]),
    'h.0.mlp.c_fc.weight.scale': t('F16', [32, 4]), 'lm_head.weight': t('F16', [10, 32]),
  }),
    { stored: 'q8_0', untied: true });
  assert.deepEqual(storedPrecision({ __metadata__: { format: 'pt' }, 'wte.weight': t('BF16', [10, 4]) }), { stored: 'f32', untied: false });
});
