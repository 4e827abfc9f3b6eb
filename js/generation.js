// generation.js - one generation (model.generate, session.generate): the options' checks, the
// gpt2_generate_params they become, and the async iterator of pieces over the core's generator.
import { CONTEXT_POLICIES, GENERATE_DEFAULTS, LAYOUT, LIMITS, STOP_REASONS } from './constants.js';
import { abortError, Gpt2Error } from './errors.js';
import { checkOptions, OPTION_NAMES } from './options.js';

/** @typedef {import('./model.js').Gpt2Model} Gpt2Model */

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

/** Whether x is a model of model's class (a Gpt2Model; this module does not import model.js, which imports it). */
const isModel = (model, x) => x instanceof model.constructor;

/** Draft tokens per round when none is given (measured: BENCHMARKS.md, speculative decoding). */
export const DEFAULT_DRAFT_TOKENS = 4;

/**
 * Checks a draft token count: a whole number from 1 to the core's GPT2_SPECULATIVE_MAX_K.
 * @param {unknown} k
 * @returns {number}
 */
export function checkDraftTokens(k) {
  if (!Number.isInteger(k) || k < 1 || k > LIMITS.draftTokensMax) {
    throw new Gpt2Error(`draftTokens must be a whole number from 1 to ${LIMITS.draftTokensMax}, got ${JSON.stringify(k)}`, 'arg');
  }
  return /** @type {number} */ (k);
}

/**
 * Checks a draft model for `model`: loaded, not disposed, in the model's WebAssembly instance
 * (`load(source, { into: model })`), with the same vocabulary size.
 * @param {Gpt2Model} model
 * @param {unknown} draft
 * @returns {Gpt2Model}
 */
export function checkDraftModel(model, draft) {
  if (!isModel(model, draft) || draft.disposed) throw new Gpt2Error('draft must be a loaded, not disposed model', 'arg');
  if (draft.core !== model.core) {
    throw new Gpt2Error("draft must be loaded into this model's WebAssembly instance: load(source, { into: model })", 'arg');
  }
  if (draft.config.nVocab !== model.config.nVocab) {
    throw new Gpt2Error(`the draft model has ${draft.config.nVocab} tokens in its vocabulary, the big model ${model.config.nVocab}`, 'shape');
  }
  return draft;
}

/**
 * Checks generate's `draft` and `draftTokens` options: null without a draft, else
 * { model, tokens }. `draft` undefined means the model's own draft (load's `draft` option,
 * `model.draft`), `null` none. Every sampling option works with a draft (speculative
 * sampling keeps the model's distribution; greedy gives the greedy text).
 */
function checkDraft(model, draft, draftTokens) {
  if (draft === undefined && model.draft) draft = model.draft;
  if (draft === undefined || draft === null) {
    if (draftTokens !== undefined) throw new Gpt2Error('draftTokens needs a draft model (option draft)', 'arg');
    return null;
  }
  if (isModel(model, draft) && draft.disposed) throw new Gpt2Error('the draft model has been disposed', 'arg');
  return { model: checkDraftModel(model, draft), tokens: checkDraftTokens(draftTokens ?? model.draftTokens ?? DEFAULT_DRAFT_TOKENS) };
}

/**
 * Checks generate's options and fills in the defaults (the core's gpt2_generate_params_default
 * for the numbers; the JS API's own for contextPolicy 'slide' and truncatePrompt 'left').
 */
function checkGenerateOptions(o, nCtx, nVocab) {
  const num = (name, ok, msg) => {
    const v = o[name] ?? GENERATE_DEFAULTS[name];
    if (typeof v !== 'number') throw new Gpt2Error(`${name} must be a number, got ${typeof v} ${JSON.stringify(v)}`, 'arg');
    if (!ok(v)) throw new Gpt2Error(`${name} ${msg}, got ${v}`, 'arg');
    return v;
  };
  const stop = o.stop === undefined ? [] : Array.isArray(o.stop) ? o.stop : [o.stop];
  if (stop.length > LIMITS.maxStopSequences) throw new Gpt2Error(`at most ${LIMITS.maxStopSequences} stop sequences`, 'arg');
  for (const s of stop) if (typeof s !== 'string' || s === '') throw new Gpt2Error('stop sequences must be non-empty strings', 'arg');
  const bias = [];
  if (o.logitBias !== undefined && o.logitBias !== null) {
    if (typeof o.logitBias !== 'object' || Array.isArray(o.logitBias)) {
      throw new Gpt2Error('logitBias must be an object { tokenId: bias }', 'arg');
    }
    const entries = o.logitBias instanceof Map ? [...o.logitBias] : Object.entries(o.logitBias);
    for (const [key, value] of entries) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0 || id >= nVocab) {
        throw new Gpt2Error(`logitBias: token id ${key} is outside the vocabulary [0, ${nVocab})`, 'range');
      }
      if (typeof value !== 'number' || Number.isNaN(value) || value === Infinity) {
        throw new Gpt2Error(`logitBias of token ${id} must be a finite number or -Infinity, got ${value}`, 'arg');
      }
      bias.push([id, value]);
    }
  }
  const banned = o.bannedWords === undefined || o.bannedWords === null ? [] : Array.isArray(o.bannedWords) ? o.bannedWords : [o.bannedWords];
  for (const w of banned) if (typeof w !== 'string' || w === '') throw new Gpt2Error('bannedWords must be non-empty strings', 'arg');
  const contextPolicy = o.contextPolicy ?? 'slide';
  if (contextPolicy !== 'slide' && contextPolicy !== 'stop') {
    throw new Gpt2Error(`contextPolicy must be 'slide' or 'stop', got ${JSON.stringify(contextPolicy)}`, 'arg');
  }
  const truncatePrompt = o.truncatePrompt ?? 'left';
  if (truncatePrompt !== 'left' && truncatePrompt !== 'error') {
    throw new Gpt2Error(`truncatePrompt must be 'left' or 'error', got ${JSON.stringify(truncatePrompt)}`, 'arg');
  }
  return {
    contextPolicy,
    truncatePrompt,
    slideKeep: num('slideKeep', (v) => Number.isInteger(v) && v >= 0 && v < nCtx, `must be a whole number from 0 (half the context) to ${nCtx - 1}`),
    maxTokens: num('maxTokens', (v) => Number.isInteger(v) && v >= 0, 'must be a whole number >= 0'),
    temperature: num('temperature', (v) => v >= 0 && Number.isFinite(v), 'must be a number >= 0'),
    topK: num('topK', (v) => Number.isInteger(v) && v >= 0, 'must be a whole number >= 0'),
    topP: num('topP', (v) => v > 0 && v <= 1, 'must be in (0, 1]'),
    repetitionPenalty: num('repetitionPenalty', (v) => v > 0 && Number.isFinite(v), 'must be a number > 0'),
    seed: num('seed', (v) => Number.isSafeInteger(v) && v >= 0, 'must be a whole number >= 0'),
    ignoreEot: !!o.ignoreEot,
    special: !!o.special,
    stop,
    bias,
    banned,
    nCtx,
  };
}

/**
 * One generation: an async iterator of pieces { text, token }, plus `summary`, a promise of
 * { tokens, promptTokens, stopReason, text, timings } that settles when the iteration ends.
 * With a session, it continues the session's tokens and appends the generated ones to it.
 */
export class Generation {
  constructor(model, prompt, options, session) {
    options = checkOptions(options, OPTION_NAMES.generate);
    this.model = model;
    this.session = session;
    this.signal = options.signal;
    this.opts = checkGenerateOptions(options, model.config.nCtx, model.config.nVocab);
    this.prompt = prompt;
    this.text = '';
    this.done = false;
    let resolve, reject;
    this.summary = new Promise((res, rej) => { resolve = res; reject = rej; });
    this.summary.catch(() => {}); // a rejected summary is also thrown by the iterator
    this.settle = { resolve, reject };
    this.g = 0;
    this.piece = 0;
    this.draftSession = 0;
    this.draft = checkDraft(model, options.draft, options.draftTokens);
  }

  [Symbol.asyncIterator]() { return this; }

  #start() {
    const m = this.model;
    const core = m.core;
    const session = this.session;
    if (session) session.checkUsable();
    const ids = session ? [] : typeof this.prompt === 'string' ? m.tokenize(this.prompt, { special: this.opts.special }) : Array.from(this.prompt);
    const allocs = [];
    const alloc = (n) => { const p = core.malloc(n); allocs.push(p); return p; };
    const string = (s) => { const [p] = core.string(s); allocs.push(p); return p; };
    try {
      const [idPtr] = core.copyIds(ids, m.config.nVocab);
      allocs.push(idPtr);
      this.g = core.checkPtr(core.m._wasm_generator_create(m.weights, m.tokenizer, this.#params(alloc, string), idPtr,
        ids.length, session ? session.ptr : 0, core.err));
      if (this.draft) { // the draft's session runs at most a round's tokens per step
        this.draftSession = core.checkPtr(core.m._wasm_session_create(this.draft.model.weights, LIMITS.draftTokensMax, core.err));
        core.check(core.m._gpt2_generator_set_draft(this.g, this.draftSession, this.draft.tokens, core.err));
      }
    } finally {
      allocs.forEach((p) => core.free(p));
    }
    if (session) session.generation = this;
    this.piece = core.malloc(LAYOUT.piece.size);
    this.t0 = now();
  }

  /**
   * The options as a gpt2_generate_params in memory (src/generate.h; the core's defaults first,
   * then every option): its pointer. alloc(n) and string(s) allocate what the call frees after
   * wasm_generator_create, which copies what it keeps.
   */
  #params(alloc, string) {
    const o = this.opts, { m } = this.model.core, L = LAYOUT.generateParams;
    const p = alloc(L.size);
    m._gpt2_generate_params_default(p);
    const array = (n) => alloc(4 * Math.max(1, n));
    const banned = array(o.banned.length), biasIds = array(o.bias.length), bias = array(o.bias.length);
    o.banned.forEach((w, i) => { m.HEAPU32[(banned >>> 2) + i] = string(w); });
    o.bias.forEach(([id, v], i) => { m.HEAP32[(biasIds >>> 2) + i] = id; m.HEAPF32[(bias >>> 2) + i] = v; });
    o.stop.forEach((s, i) => { m.HEAPU32[((p + L.stop) >>> 2) + i] = string(s); }); // an array inside the struct
    this.model.core.setFields(p, L, {
      int: {
        maxTokens: o.maxTokens, topK: o.topK, ignoreEot: o.ignoreEot ? 1 : 0, nStop: o.stop.length,
        nBanned: o.banned.length, bannedWords: banned, nBias: o.bias.length, biasIds, bias, slideKeep: o.slideKeep,
        contextPolicy: CONTEXT_POLICIES.indexOf(o.contextPolicy), truncatePrompt: o.truncatePrompt === 'left' ? 1 : 0,
      },
      float: { temperature: o.temperature, topP: o.topP, repetitionPenalty: o.repetitionPenalty },
      u64: { seed: o.seed },
    });
    return p;
  }

  /** Frees the generator and settles `summary` (with stopReason, or rejected with error). */
  #finish(error, stopReason) {
    const core = this.model.core;
    const t = now();
    let tokens = 0, promptTokens = 0, truncatedTokens = 0, slides = 0, proposed = 0, accepted = 0;
    if (core && this.g) {
      proposed = core.m._gpt2_generator_draft_proposed(this.g);
      accepted = core.m._gpt2_generator_draft_accepted(this.g);
      tokens = core.m._gpt2_generator_count(this.g);
      promptTokens = core.m._gpt2_generator_prompt_tokens(this.g);
      truncatedTokens = core.m._gpt2_generator_truncated(this.g);
      slides = core.m._gpt2_generator_slides(this.g);
      core.m._gpt2_generator_free(this.g);
      core.free(this.piece);
    }
    if (core && this.draftSession) core.m._gpt2_session_free(this.draftSession);
    this.draftSession = 0;
    this.g = 0;
    this.done = true;
    if (this.session && this.session.generation === this) this.session.generation = null;
    if (error) {
      this.settle.reject(error);
      return;
    }
    const first = this.tFirst ?? t;
    const warnings = [];
    if (truncatedTokens) {
      warnings.push(`the prompt was longer than the context: its first ${truncatedTokens} tokens were dropped`);
    }
    this.settle.resolve({
      tokens,
      promptTokens,
      truncatedTokens,
      slides,
      warnings,
      stopReason,
      text: this.text,
      ...(this.draft ? { speculative: { proposed, accepted, rate: proposed ? accepted / proposed : null } } : {}),
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
      if (this.session && this.session.disposed) throw new Gpt2Error('the session has been disposed', 'arg');
      if (this.draft && this.draft.model.disposed) throw new Gpt2Error('the draft model has been disposed', 'arg');
      if (!this.g) this.#start();
      const core = this.model.core;
      core.check(core.m._gpt2_generator_next(this.g, this.piece, core.err));
      const P = LAYOUT.piece;
      const id = core.i32(this.piece + P.id);
      const text = core.text(core.u32(this.piece + P.text), core.u32(this.piece + P.len));
      const stop = STOP_REASONS[core.i32(this.piece + P.stop)];
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
    this.cancel();
    return { done: true, value: undefined };
  }

  /** Ends the generation now (synchronously) with stopReason 'cancelled', if still running. */
  cancel() {
    if (!this.done) this.#finish(null, 'cancelled');
  }
}
