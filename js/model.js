// model.js - a loaded model: tokenize, detokenize, generate (async iterator), score, logits.
import { abortError, Gpt2Error } from './errors.js';

const STOP_REASONS = ['none', 'max_tokens', 'eot', 'stop_sequence', 'context_full'];
const MAX_STOP_SEQUENCES = 8;

/** Lets other tasks (timers, abort events, UI) run between tokens. */
const yieldToEventLoop = typeof setImmediate === 'function'
  ? () => new Promise((resolve) => setImmediate(resolve))
  : (() => {
      const ch = new MessageChannel();
      const queue = [];
      ch.port1.onmessage = () => queue.shift()();
      return () => new Promise((resolve) => { queue.push(resolve); ch.port2.postMessage(0); });
    })();

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

export class Gpt2Model {
  /** @param {import('./core.js').Core} core */
  constructor(core, weights, tokenizer, info) {
    this.core = core;
    this.weights = weights;
    this.tokenizer = tokenizer;
    const cfg = core.malloc(28);
    core.m._wasm_weights_config(weights, cfg);
    const v = (i) => core.i32(cfg + 4 * i);
    /** The model's hyper-parameters. */
    this.config = Object.freeze({
      nLayer: v(0), nHead: v(1), nEmbd: v(2), nCtx: v(3), nVocab: v(4), nInner: v(5), untiedHead: v(6) === 1,
    });
    core.free(cfg);
    this.eotId = core.m._gpt2_tokenizer_eot_id(tokenizer);
    this.info = Object.freeze({ ...info, weightsBytes: core.m._wasm_weights_bytes(weights) });
    this.disposed = false;
  }

  #live() {
    if (this.disposed) throw new Gpt2Error('the model has been disposed', 'arg');
    return this.core;
  }

  /**
   * Token ids of text (GPT-2's byte-level BPE).
   * @param {string} text
   * @param {{ special?: boolean }} [options] special: treat '<|endoftext|>' as the special token
   * @returns {number[]}
   */
  tokenize(text, options = {}) {
    const core = this.#live();
    if (typeof text !== 'string') throw new Gpt2Error('tokenize: text must be a string', 'arg');
    const [t, len] = core.string(text);
    const ids = core.malloc(4 * Math.max(1, len));
    const nOut = core.malloc(4);
    try {
      core.check(core.m._gpt2_tokenizer_encode(this.tokenizer, t, len, options.special ? 1 : 0, ids, len, nOut, core.err));
      const n = core.u32(nOut);
      return Array.from(core.m.HEAP32.subarray(ids >>> 2, (ids >>> 2) + n));
    } finally {
      core.free(t);
      core.free(ids);
      core.free(nOut);
    }
  }

  /**
   * Text of token ids; bytes that do not form UTF-8 become U+FFFD.
   * @param {number[]} ids
   * @returns {string}
   */
  detokenize(ids) {
    const core = this.#live();
    const [p, n] = this.#ids(ids);
    const nOut = core.malloc(4);
    try {
      // First ask for the size (out = NULL), then decode.
      core.m._gpt2_tokenizer_decode(this.tokenizer, p, n, 0, 0, nOut, 0);
      const cap = core.u32(nOut) + 1;
      const out = core.malloc(cap);
      try {
        core.check(core.m._gpt2_tokenizer_decode(this.tokenizer, p, n, out, cap, nOut, core.err));
        return core.text(out, core.u32(nOut));
      } finally {
        core.free(out);
      }
    } finally {
      core.free(p);
      core.free(nOut);
    }
  }

  /** Copies ids into WASM memory, validating them; returns [ptr, count]. */
  #ids(ids) { return copyIds(this.core, ids, this.config.nVocab); }

  /**
   * Logits of the last position after running ids (for tests and tools).
   * @param {number[]} ids
   * @returns {Float32Array}
   */
  logits(ids) {
    const core = this.#live();
    const [p, n] = this.#ids(ids);
    if (n === 0) {
      core.free(p);
      throw new Gpt2Error('logits: no tokens', 'arg');
    }
    let state = 0;
    const out = core.malloc(4 * this.config.nVocab);
    try {
      state = core.checkPtr(core.m._wasm_state_create(this.weights, Math.min(n, 64), core.err));
      core.check(core.m._gpt2_forward(state, p, n, out, 0, core.err));
      return core.m.HEAPF32.slice(out >>> 2, (out >>> 2) + this.config.nVocab);
    } finally {
      if (state) core.m._gpt2_state_free(state);
      core.free(out);
      core.free(p);
    }
  }

  /**
   * Per-token log-probabilities and ranks of a text under the model.
   * @param {string|number[]} text a string, or token ids
   * @param {{ special?: boolean }} [options]
   * @returns {import('./index.js').ScoreResult}
   */
  score(text, options = {}) {
    const core = this.#live();
    const ids = typeof text === 'string' ? this.tokenize(text, options) : Array.from(text);
    if (ids.length === 0) throw new Gpt2Error('nothing to score: the text has no tokens', 'arg');
    const [p, n] = this.#ids(ids);
    const lp = core.malloc(4 * n);
    const rk = core.malloc(4 * n);
    try {
      core.check(core.m._gpt2_score(this.weights, p, n, lp, rk, core.err));
      const tokens = [];
      let total = 0;
      for (let t = 0; t < n; t++) {
        const logprob = t === 0 ? null : core.m.HEAPF32[(lp >>> 2) + t - 1];
        const rank = t === 0 ? null : core.m.HEAP32[(rk >>> 2) + t - 1];
        if (logprob !== null) total += logprob;
        tokens.push({ id: ids[t], text: this.detokenize([ids[t]]), logprob, rank });
      }
      return { tokens, totalLogprob: total, perplexity: n > 1 ? Math.exp(-total / (n - 1)) : null };
    } finally {
      core.free(p);
      core.free(lp);
      core.free(rk);
    }
  }

  /**
   * Generates a continuation of prompt, token by token.
   * @param {string|number[]} prompt text, or token ids
   * @param {import('./index.js').GenerateOptions} [options]
   * @returns {import('./index.js').Generation}
   */
  generate(prompt, options = {}) {
    this.#live();
    return new Generation(this, prompt, options);
  }

  /** Frees the model's memory; the model cannot be used afterwards. Safe to call twice. */
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.core.m._gpt2_weights_free(this.weights);
    this.core.m._gpt2_tokenizer_free(this.tokenizer);
    this.core.free(this.core.err);
    this.core = null;
  }
}

/** Copies token ids into new WASM memory after checking each; returns [ptr, count]. */
function copyIds(core, ids, nVocab) {
  if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) throw new Gpt2Error('token ids must be an array of numbers', 'arg');
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= nVocab) {
      throw new Gpt2Error(`token id ${id} at index ${i} is outside the vocabulary [0, ${nVocab})`, 'range');
    }
  }
  const p = core.malloc(4 * Math.max(1, ids.length));
  core.m.HEAP32.set(ids, p >>> 2);
  return [p, ids.length];
}

function validateOptions(o, nCtx) {
  const num = (name, def, ok, msg) => {
    const v = o[name] ?? def;
    if (typeof v !== 'number') throw new Gpt2Error(`${name} must be a number, got ${typeof v} ${JSON.stringify(v)}`, 'arg');
    if (!ok(v)) throw new Gpt2Error(`${name} ${msg}, got ${v}`, 'arg');
    return v;
  };
  const stop = o.stop === undefined ? [] : Array.isArray(o.stop) ? o.stop : [o.stop];
  if (stop.length > MAX_STOP_SEQUENCES) throw new Gpt2Error(`at most ${MAX_STOP_SEQUENCES} stop sequences`, 'arg');
  for (const s of stop) if (typeof s !== 'string' || s === '') throw new Gpt2Error('stop sequences must be non-empty strings', 'arg');
  return {
    maxTokens: num('maxTokens', 64, (v) => Number.isInteger(v) && v >= 0, 'must be a whole number >= 0'),
    temperature: num('temperature', 1, (v) => v >= 0 && Number.isFinite(v), 'must be a number >= 0'),
    topK: num('topK', 0, (v) => Number.isInteger(v) && v >= 0, 'must be a whole number >= 0'),
    topP: num('topP', 1, (v) => v > 0 && v <= 1, 'must be in (0, 1]'),
    repetitionPenalty: num('repetitionPenalty', 1, (v) => v > 0 && Number.isFinite(v), 'must be a number > 0'),
    seed: num('seed', 0, (v) => Number.isSafeInteger(v) && v >= 0, 'must be a whole number >= 0'),
    ignoreEot: !!o.ignoreEot,
    special: !!o.special,
    stop,
    nCtx,
  };
}

/**
 * One generation: an async iterator of pieces { text, token }, plus `summary`, a promise of
 * { tokens, promptTokens, stopReason, text, timings } that settles when the iteration ends.
 */
class Generation {
  constructor(model, prompt, options) {
    this.model = model;
    this.signal = options.signal;
    this.opts = validateOptions(options, model.config.nCtx);
    this.prompt = prompt;
    this.text = '';
    this.done = false;
    let resolve, reject;
    this.summary = new Promise((res, rej) => { resolve = res; reject = rej; });
    this.summary.catch(() => {}); // a rejected summary is also thrown by the iterator
    this.settle = { resolve, reject };
    this.g = 0;
    this.piece = 0;
  }

  [Symbol.asyncIterator]() { return this; }

  #start() {
    const m = this.model;
    const core = m.core;
    const ids = typeof this.prompt === 'string' ? m.tokenize(this.prompt, { special: this.opts.special }) : Array.from(this.prompt);
    const [idPtr] = copyIds(core, ids, m.config.nVocab);
    const stops = this.opts.stop.map((s) => core.string(s)[0]);
    const stopArr = core.malloc(4 * Math.max(1, stops.length));
    stops.forEach((s, i) => { core.m.HEAPU32[(stopArr >>> 2) + i] = s; });
    try {
      const o = this.opts;
      this.g = core.checkPtr(core.m._wasm_generator_create(m.weights, m.tokenizer, idPtr, ids.length, o.maxTokens,
        o.temperature, o.topK, o.topP, o.repetitionPenalty, o.seed, o.ignoreEot ? 1 : 0, stopArr, stops.length, core.err));
    } finally {
      core.free(idPtr);
      stops.forEach((s) => core.free(s));
      core.free(stopArr);
    }
    this.piece = core.malloc(16);
    this.t0 = now();
  }

  /** Frees the generator and settles `summary` (with stopReason, or rejected with error). */
  #finish(error, stopReason) {
    const core = this.model.core;
    const t = now();
    let tokens = 0, promptTokens = 0;
    if (core && this.g) {
      tokens = core.m._gpt2_generator_count(this.g);
      promptTokens = core.m._gpt2_generator_prompt_tokens(this.g);
      core.m._gpt2_generator_free(this.g);
      core.free(this.piece);
    }
    this.g = 0;
    this.done = true;
    if (error) {
      this.settle.reject(error);
      return;
    }
    const first = this.tFirst ?? t;
    this.settle.resolve({
      tokens,
      promptTokens,
      stopReason,
      text: this.text,
      timings: {
        firstTokenMs: this.t0 === undefined ? 0 : first - this.t0,
        totalMs: this.t0 === undefined ? 0 : t - this.t0,
        tokensPerSecond: tokens > 1 && t > first ? (tokens - 1) / ((t - first) / 1000) : null,
      },
    });
  }

  async next() {
    if (this.done) return { done: true, value: undefined };
    try {
      await yieldToEventLoop();
      if (this.signal && this.signal.aborted) throw abortError(this.signal);
      if (this.model.disposed) throw new Gpt2Error('the model has been disposed', 'arg');
      if (!this.g) this.#start();
      const core = this.model.core;
      core.check(core.m._gpt2_generator_next(this.g, this.piece, core.err));
      const id = core.i32(this.piece);
      const text = core.text(core.u32(this.piece + 4), core.u32(this.piece + 8));
      const stop = STOP_REASONS[core.i32(this.piece + 12)];
      const t = now();
      if (id >= 0 && this.tFirst === undefined) this.tFirst = t;
      this.text += text;
      if (stop !== 'none') {
        this.#finish(null, stop);
        if (id < 0 && text === '') return { done: true, value: undefined };
      }
      return { done: false, value: { text, token: id >= 0 ? id : null } };
    } catch (e) {
      this.#finish(e);
      throw e;
    }
  }

  /** Stops early (called by `break` in for-await); frees the generator. */
  async return() {
    if (!this.done) this.#finish(null, 'cancelled');
    return { done: true, value: undefined };
  }
}
