// finetune.js - training a loaded model in place (src/train.h) and saving it as a Hugging Face
// folder. Used by Gpt2Model.finetune / Gpt2Model.save (model.js).
import { DTYPES, LAYOUT, OPTIMIZERS, SCHEDULES, TRAIN_DEFAULTS } from './constants.js';
import { abortError, Gpt2Error } from './errors.js';
import { checkOptions as checkNames, OPTION_NAMES } from './options.js';

/** The core's defaults (gpt2_train_options_default) and those of the JS API's own options. */
const DEFAULTS = {
  steps: 100, ...TRAIN_DEFAULTS, shuffle: false, valFraction: 0, evalEvery: 0, resume: undefined, checkpointEvery: 0,
  signal: undefined,
};

const INT32_MAX = 2 ** 31 - 1;

const yieldToEventLoop = typeof setImmediate === 'function'
  ? () => new Promise((resolve) => setImmediate(resolve))
  : () => new Promise((resolve) => setTimeout(resolve, 0));
const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/** Checks the options (unknown names, types, choices); the core checks the numeric ranges. */
function checkOptions(options) {
  const o = { ...DEFAULTS, ...checkNames(options, OPTION_NAMES.finetune) };
  const zeroOk = ['warmup', 'evalEvery', 'checkpointEvery'];
  for (const k of ['steps', 'batch', 'seq', 'gradAccum', ...zeroOk]) {
    if (!Number.isInteger(o[k]) || o[k] < (zeroOk.includes(k) ? 0 : 1)) {
      throw new Gpt2Error(`finetune: ${k} must be a whole number >= ${zeroOk.includes(k) ? 0 : 1}, got ${o[k]}`, 'arg');
    }
    if (o[k] > INT32_MAX) throw new Gpt2Error(`finetune: ${k} must be at most ${INT32_MAX}, got ${o[k]}`, 'range'); // a C int
  }
  if (o.resume !== undefined && !(o.resume instanceof Uint8Array)) {
    throw new Gpt2Error('finetune: resume must be the bytes of a checkpoint (a Uint8Array)', 'arg');
  }
  for (const k of ['lr', 'weightDecay', 'beta1', 'beta2', 'eps', 'gradClip', 'valFraction']) {
    if (typeof o[k] !== 'number' || Number.isNaN(o[k])) throw new Gpt2Error(`finetune: ${k} must be a number, got ${o[k]}`, 'arg');
  }
  if (!OPTIMIZERS.includes(o.optimizer)) throw new Gpt2Error(`finetune: optimizer is 'adamw' or 'sgd', got '${o.optimizer}'`, 'arg');
  if (!SCHEDULES.includes(o.schedule)) throw new Gpt2Error(`finetune: schedule is 'constant' or 'cosine', got '${o.schedule}'`, 'arg');
  if (!(o.valFraction >= 0 && o.valFraction < 1)) throw new Gpt2Error(`finetune: valFraction must be in [0, 1), got ${o.valFraction}`, 'arg');
  if (o.shuffle !== false && !(Number.isSafeInteger(o.shuffle) && o.shuffle >= 0)) {
    throw new Gpt2Error(`finetune: shuffle is false or a seed (a whole number >= 0), got ${o.shuffle}`, 'arg');
  }
  return o;
}

/**
 * Trains model in place; yields { step, loss, valLoss?, lr, gradNorm, tokensPerSecond,
 * checkpoint? } per step. Everything is checked before the first step; the weights are written
 * back into the model when the iteration ends (all steps done, break, abort or error), so the
 * model is always consistent.
 *
 * Checkpoints (train.h's resumable format, the bytes the native `gpt2 finetune` writes to
 * finetune-state.bin): with checkpointEvery K > 0, every K-th step and the last carry
 * `checkpoint` (a copy of the state after that step), and the model holds that step's weights
 * while the step is being consumed (so model.save() then saves it). With resume (checkpoint
 * bytes), the state is restored before the first step (refused, nothing changed, for another
 * model's or optimizer's checkpoint or damaged bytes), training continues at the checkpoint's
 * step + 1 up to steps (the total, as natively), and the model holds the checkpoint's weights
 * even when no step is left. WebAssembly memory needs room for one extra copy of the checkpoint.
 * @param {import('./model.js').Gpt2Model} model
 */
export async function* finetune(model, core, textOrIds, options = {}) {
  const o = checkOptions(options);
  const ids = typeof textOrIds === 'string' ? model.tokenize(textOrIds) : Array.from(textOrIds ?? []);
  if (typeof textOrIds !== 'string' && !Array.isArray(textOrIds) && !ArrayBuffer.isView(textOrIds)) {
    throw new Gpt2Error('finetune: the data must be a string or token ids', 'arg');
  }
  if (ids.length === 0) throw new Gpt2Error('the training text is empty', 'arg');
  const nVal = Math.floor(ids.length * o.valFraction), nTrain = ids.length - nVal;
  if (nVal > 0 && nVal < o.seq + 1) {
    throw new Gpt2Error(`the held-out part (${nVal} tokens) is shorter than one window of ${o.seq} + 1 tokens`, 'arg');
  }
  const m = core.m;
  const [p, n] = core.copyIds(ids, model.config.nVocab);
  const opt = trainOptions(core, o), stats = core.malloc(16), loss = core.malloc(4);
  let t = 0, done = 0;
  try {
    t = core.checkPtr(m._wasm_train_create(model.weights, opt, core.err));
    core.check(m._gpt2_train_set_data(t, p, nTrain, core.err));
    let first = 1;
    if (o.resume) {
      readCheckpoint(core, t, o.resume);
      first = m._wasm_train_step_count(t) + 1;
      done = first - 1;
    }
    for (let s = first; s <= o.steps; s++) {
      if (o.signal && o.signal.aborted) throw abortError(o.signal);
      const t0 = now();
      core.check(m._wasm_train_step(t, stats, core.err));
      done = s;
      const f = m.HEAPF32.subarray(stats >>> 2, (stats >>> 2) + 4);
      const out = { step: s, loss: f[1], lr: f[3], gradNorm: f[2], tokensPerSecond: 0 };
      out.tokensPerSecond = (o.batch * o.seq * o.gradAccum * 1000) / Math.max(1e-3, now() - t0);
      if (nVal > 0 && (s === o.steps || (o.evalEvery && s % o.evalEvery === 0))) {
        core.check(m._gpt2_train_evaluate(t, p + 4 * nTrain, nVal, loss, core.err));
        out.valLoss = m.HEAPF32[loss >>> 2];
      }
      if (o.checkpointEvery && (s % o.checkpointEvery === 0 || s === o.steps)) {
        core.check(m._gpt2_train_write_back(t, model.weights, core.err));
        out.checkpoint = writeCheckpoint(core, t);
      }
      yield out;
      await yieldToEventLoop();
    }
  } finally {
    if (t && done > 0) core.check(m._gpt2_train_write_back(t, model.weights, core.err));
    if (t) m._gpt2_train_free(t);
    core.free(p);
    core.free(opt);
    core.free(stats);
    core.free(loss);
  }
}

/** The options as a gpt2_train_options in new memory (src/train.h: the core's defaults, then every option). */
function trainOptions(core, o) {
  const p = core.malloc(LAYOUT.trainOptions.size);
  core.m._gpt2_train_options_default(p);
  core.setFields(p, LAYOUT.trainOptions, {
    int: {
      batch: o.batch, seq: o.seq, gradAccum: o.gradAccum, optimizer: OPTIMIZERS.indexOf(o.optimizer), warmup: o.warmup,
      schedule: SCHEDULES.indexOf(o.schedule), totalSteps: o.steps, shuffle: o.shuffle === false ? 0 : 1,
    },
    float: { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, gradClip: o.gradClip },
    u64: { seed: o.shuffle === false ? 0 : o.shuffle },
  });
  return p;
}

/** The training state's checkpoint as bytes (a copy). */
function writeCheckpoint(core, t) {
  const m = core.m, size = m._wasm_train_checkpoint_size(t);
  const buf = core.malloc(size);
  try {
    core.check(m._wasm_train_checkpoint_write(t, buf, size, core.err));
    return core.heap.slice(buf, buf + size);
  } finally {
    core.free(buf);
  }
}

/** Restores the training state from checkpoint bytes (checked first; nothing changes on error). */
function readCheckpoint(core, t, bytes) {
  const m = core.m, buf = core.malloc(Math.max(1, bytes.length));
  try {
    core.heap.set(bytes, buf);
    core.check(m._wasm_train_checkpoint_read(t, buf, bytes.length, core.err));
  } finally {
    core.free(buf);
  }
}

/**
 * The model as a Hugging Face folder: { 'config.json', 'model.safetensors', 'vocab.json',
 * 'merges.txt' } as Uint8Arrays. dtype 'f32' (default) or 'f16' (the matrices; biases, layer
 * norms and wpe stay F32).
 */
export function saveFiles(model, core, dtype = 'f32') {
  if (dtype !== 'f32' && dtype !== 'f16') throw new Gpt2Error(`save: dtype is 'f32' or 'f16', got '${dtype}'`, 'arg');
  if (!model.tokenizerFiles) throw new Gpt2Error('save: this model was loaded without its tokenizer files', 'arg');
  const m = core.m, d = DTYPES.indexOf(dtype);
  const size = m._wasm_weights_safetensors_size(model.weights, d);
  const buf = core.malloc(size);
  let st;
  try {
    core.check(m._wasm_weights_write_safetensors(model.weights, d, buf, size, core.err));
    st = core.heap.slice(buf, buf + size);
  } finally {
    core.free(buf);
  }
  const cfg = core.malloc(4096);
  let config;
  try {
    const len = m._wasm_weights_config_json(model.weights, d, cfg, 4096) >>> 0;
    config = core.heap.slice(cfg, cfg + len);
  } finally {
    core.free(cfg);
  }
  return {
    'config.json': config, 'model.safetensors': st,
    'vocab.json': model.tokenizerFiles['vocab.json'], 'merges.txt': model.tokenizerFiles['merges.txt'],
  };
}
