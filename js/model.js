// model.js - a loaded model: tokenize, detokenize, generate (async iterator), score, rank,
// sessions, logits.
import { abortError, Gpt2Error } from './errors.js';
import { checkOptions, OPTION_NAMES } from './options.js';
import { Session } from './session.js';
import { finetune, saveFiles } from './finetune.js';
import { importNode, isNode } from './platform.js';

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
    /** Live sessions, disposed with the model. @type {Set<Session>} */
    this.sessions = new Set();
    /** vocab.json and merges.txt as loaded (for save()); set by load(). @type {Record<string, Uint8Array>|null} */
    this.tokenizerFiles = null;
    /** Models loaded into this one's instance (load's `into`), disposed with it. @type {Set<Gpt2Model>} */
    this.guests = new Set();
    /** The model whose instance this one was loaded into (load's `into`), or null. @type {Gpt2Model|null} */
    this.host = null;
    /** The draft generate uses by default (load's `draft`), or null. @type {Gpt2Model|null} */
    this.draft = null;
    /** Its tokens per round (load's `draftTokens`), or null for the default. @type {number|null} */
    this.draftTokens = null;
    /** True for a model loaded with `into`: it shares another model's instance. */
    this.sharedCore = false;
    /** The thread pool (set by load()). */
    this.pool = 0;
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
  tokenize(text, options) {
    const core = this.#live();
    options = checkOptions(options, OPTION_NAMES.tokenize);
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
   * Per-token log-probabilities, ranks and the most likely alternatives of a text under the model.
   *
   * Token texts: each token gets the characters it completes when the tokens are decoded in
   * order (the streaming rule of `generate`): a character split over several tokens belongs
   * to the token holding its last byte, the earlier ones get `''`. So the tokens' texts
   * joined give back the input exactly (for token ids: `detokenize(ids)`).
   * @param {string|number[]} text a string, or token ids
   * @param {{ special?: boolean, topK?: number }} [options] topK: alternatives per token (default 5)
   * @returns {import('./index.js').ScoreResult}
   */
  score(text, options) {
    const core = this.#live();
    options = checkOptions(options, OPTION_NAMES.score);
    const topK = options.topK ?? 5;
    if (!Number.isInteger(topK) || topK < 0 || topK > this.config.nVocab) {
      throw new Gpt2Error(`topK must be a whole number from 0 to ${this.config.nVocab}, got ${topK}`, 'arg');
    }
    const ids = typeof text === 'string' ? this.tokenize(text, { special: options.special }) : Array.from(text);
    if (ids.length === 0) throw new Gpt2Error('nothing to score: the text has no tokens', 'arg');
    const [p, n] = this.#ids(ids);
    const lp = core.malloc(4 * n);
    const rk = core.malloc(4 * n);
    const k = topK;
    const topIds = core.malloc(4 * Math.max(1, (n - 1) * k));
    const topLp = core.malloc(4 * Math.max(1, (n - 1) * k));
    try {
      core.check(core.m._gpt2_score_topk(this.weights, p, n, k, lp, rk, topIds, topLp, core.err));
      const texts = this.tokenTexts(ids);
      const altText = new Map();
      const textOf = (id) => {
        if (!altText.has(id)) altText.set(id, this.detokenize([id]));
        return altText.get(id);
      };
      const tokens = [];
      let total = 0;
      for (let t = 0; t < n; t++) {
        const logprob = t === 0 ? null : core.m.HEAPF32[(lp >>> 2) + t - 1];
        const rank = t === 0 ? null : core.m.HEAP32[(rk >>> 2) + t - 1];
        if (logprob !== null) total += logprob;
        const alternatives = [];
        if (t > 0) {
          for (let j = 0; j < k; j++) {
            const at = (t - 1) * k + j;
            const id = core.m.HEAP32[(topIds >>> 2) + at];
            alternatives.push({ id, text: textOf(id), logprob: core.m.HEAPF32[(topLp >>> 2) + at] });
          }
        }
        tokens.push({ id: ids[t], text: texts[t], logprob, rank, alternatives });
      }
      return { tokens, totalLogprob: total, perplexity: n > 1 ? Math.exp(-total / (n - 1)) : null };
    } finally {
      core.free(p);
      core.free(lp);
      core.free(rk);
      core.free(topIds);
      core.free(topLp);
    }
  }

  /**
   * The text each token completes when ids are decoded in order (see `score`): joined, they
   * equal `detokenize(ids)`. An incomplete character at the very end becomes U+FFFD on the
   * last token.
   * @param {number[]} ids
   * @returns {string[]}
   */
  tokenTexts(ids) {
    const core = this.#live();
    const [p, n] = this.#ids(ids);
    const cap = core.m._gpt2_decoder_max_output(this.tokenizer) >>> 0;
    const dec = core.malloc(8);
    const out = core.malloc(cap);
    const nOut = core.malloc(4);
    try {
      core.m._gpt2_decoder_init(dec);
      const texts = [];
      for (let t = 0; t < n; t++) {
        core.check(core.m._gpt2_decoder_push(dec, this.tokenizer, core.m.HEAP32[(p >>> 2) + t], out, cap, nOut, core.err));
        texts.push(core.text(out, core.u32(nOut)));
      }
      core.check(core.m._gpt2_decoder_finish(dec, out, cap, nOut, core.err));
      if (n > 0) texts[n - 1] += core.text(out, core.u32(nOut));
      return texts;
    } finally {
      core.free(p);
      core.free(dec);
      core.free(out);
      core.free(nOut);
    }
  }

  /**
   * Zero-shot ranking (the GPT-2 paper's method): how likely each choice is as the
   * continuation of prompt. Each choice is scored on the tokens of `prompt + choice` after
   * the longest run of tokens it shares with `prompt`'s own tokens (so a word merged across
   * the boundary is scored whole); with nothing shared (e.g. an empty prompt) the choice is
   * conditioned on `<|endoftext|>`. The prompt is computed once (a session, rewound per choice).
   * @param {string} prompt
   * @param {string[]} choices at least one; each must add at least one token
   * @param {{ by?: 'mean'|'sum', special?: boolean }} [options] by: sort by the mean
   *   log-probability per token (default) or the total
   * @returns {import('./index.js').RankResult[]} best first (equal scores: lower index first)
   */
  rank(prompt, choices, options) {
    this.#live();
    options = checkOptions(options, OPTION_NAMES.rank);
    const by = options.by ?? 'mean';
    if (by !== 'mean' && by !== 'sum') throw new Gpt2Error(`by must be 'mean' or 'sum', got ${JSON.stringify(by)}`, 'arg');
    if (typeof prompt !== 'string') throw new Gpt2Error('rank: prompt must be a string', 'arg');
    if (!Array.isArray(choices) || choices.length === 0) throw new Gpt2Error('rank: choices must be a non-empty array of strings', 'arg');
    for (const c of choices) if (typeof c !== 'string') throw new Gpt2Error('rank: choices must be strings', 'arg');
    const special = { special: !!options.special };
    const base = this.tokenize(prompt, special);
    const session = this.session();
    try {
      const results = choices.map((choice, index) => {
        const full = this.tokenize(prompt + choice, special);
        let c = 0;
        while (c < base.length && c < full.length && base[c] === full[c]) c++;
        const scored = full.slice(c);
        if (scored.length === 0) throw new Gpt2Error(`rank: choice ${index} (${JSON.stringify(choice)}) adds no tokens`, 'arg');
        const context = c > 0 ? full.slice(0, c) : [this.eotId];
        const logprobs = session.scoreContinuation(context, scored);
        const logprob = logprobs.reduce((a, b) => a + b, 0);
        return { choice, index, logprob, meanLogprob: logprob / scored.length, tokens: scored.length };
      });
      const key = by === 'mean' ? 'meanLogprob' : 'logprob';
      return results.sort((a, b) => b[key] - a[key] || a.index - b.index);
    } finally {
      session.dispose();
    }
  }

  /**
   * A session: a token sequence with its own KV cache, extended call by call (see Session).
   * @returns {Session}
   */
  session() {
    const core = this.#live();
    const ptr = core.checkPtr(core.m._wasm_session_create(this.weights, 64, core.err));
    const s = new Session(this, ptr);
    this.sessions.add(s);
    return s;
  }

  /**
   * Generates a continuation of prompt, token by token.
   * @param {string|number[]} prompt text, or token ids
   * @param {import('./index.js').GenerateOptions} [options]
   * @returns {import('./index.js').Generation}
   */
  generate(prompt, options) {
    this.#live();
    return new Generation(this, prompt, options, null);
  }

  /**
   * Fine-tunes the model in place on a text (or token ids); an async iterator of one
   * { step, loss, valLoss?, lr, gradNorm, tokensPerSecond } per optimiser step. When the
   * iteration ends (all steps, break, options.signal aborted, or an error) the trained weights
   * are in the model, in its precision, so generate, score and rank use them. Rules: src/train.h.
   * @param {string|number[]} textOrIds
   * @param {import('./index.js').FinetuneOptions} [options]
   * @returns {AsyncGenerator<import('./index.js').FinetuneStep>}
   */
  finetune(textOrIds, options = {}) {
    return finetune(this, this.#live(), textOrIds, options);
  }

  /**
   * The model as a Hugging Face folder (config.json, model.safetensors, vocab.json, merges.txt),
   * e.g. after finetune(). With dir (Node) the files are written there and the promise resolves
   * to the paths; otherwise to { name: Uint8Array }.
   * @param {string} [dir]
   * @param {{ dtype?: 'f32'|'f16' }} [options]
   */
  async save(dir, options = {}) {
    const files = saveFiles(this, this.#live(), options.dtype ?? 'f32');
    if (dir === undefined) return files;
    if (!isNode) throw new Gpt2Error('save(dir) needs Node (it writes files to a folder); in a browser, save() returns the files', 'unsupported');
    const { mkdir, writeFile } = await importNode('fs/promises');
    const { join } = await importNode('path');
    await mkdir(dir, { recursive: true });
    const paths = [];
    for (const [name, bytes] of Object.entries(files)) {
      paths.push(join(dir, name));
      await writeFile(join(dir, name), bytes);
    }
    return paths;
  }

  /** Frees the model's memory (and its sessions'); the model cannot be used afterwards. Safe to call twice. */
  dispose() {
    if (this.disposed) return;
    for (const s of [...this.sessions]) s.dispose();
    for (const g of [...this.guests]) g.dispose();
    this.disposed = true;
    this.core.m._gpt2_weights_free(this.weights);
    this.core.m._gpt2_tokenizer_free(this.tokenizer);
    if (!this.sharedCore) this.core.free(this.core.err);
    this.core = null;
  }
}

/** Draft tokens per round when none is given (measured: BENCHMARKS.md, speculative decoding). */
export const DEFAULT_DRAFT_TOKENS = 4;

/**
 * Checks a draft token count: a whole number from 1 to 16 (the core's GPT2_SPECULATIVE_MAX_K).
 * @param {unknown} k
 * @returns {number}
 */
export function checkDraftTokens(k) {
  if (!Number.isInteger(k) || k < 1 || k > 16) {
    throw new Gpt2Error(`draftTokens must be a whole number from 1 to 16, got ${JSON.stringify(k)}`, 'arg');
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
  if (!(draft instanceof Gpt2Model) || draft.disposed) throw new Gpt2Error('draft must be a loaded, not disposed model', 'arg');
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
  if (draft instanceof Gpt2Model && draft.disposed) throw new Gpt2Error('the draft model has been disposed', 'arg');
  return { model: checkDraftModel(model, draft), tokens: checkDraftTokens(draftTokens ?? model.draftTokens ?? DEFAULT_DRAFT_TOKENS) };
}

/** Copies token ids into new WASM memory after checking each; returns [ptr, count]. */
export function copyIds(core, ids, nVocab) {
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

function validateOptions(o, nCtx, nVocab) {
  const num = (name, def, ok, msg) => {
    const v = o[name] ?? def;
    if (typeof v !== 'number') throw new Gpt2Error(`${name} must be a number, got ${typeof v} ${JSON.stringify(v)}`, 'arg');
    if (!ok(v)) throw new Gpt2Error(`${name} ${msg}, got ${v}`, 'arg');
    return v;
  };
  const stop = o.stop === undefined ? [] : Array.isArray(o.stop) ? o.stop : [o.stop];
  if (stop.length > MAX_STOP_SEQUENCES) throw new Gpt2Error(`at most ${MAX_STOP_SEQUENCES} stop sequences`, 'arg');
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
    slideKeep: num('slideKeep', 0, (v) => Number.isInteger(v) && v >= 0 && v < nCtx, `must be a whole number from 0 (half the context) to ${nCtx - 1}`),
    maxTokens: num('maxTokens', 64, (v) => Number.isInteger(v) && v >= 0, 'must be a whole number >= 0'),
    temperature: num('temperature', 1, (v) => v >= 0 && Number.isFinite(v), 'must be a number >= 0'),
    topK: num('topK', 0, (v) => Number.isInteger(v) && v >= 0, 'must be a whole number >= 0'),
    topP: num('topP', 1, (v) => v > 0 && v <= 1, 'must be in (0, 1]'),
    repetitionPenalty: num('repetitionPenalty', 1, (v) => v > 0 && Number.isFinite(v), 'must be a number > 0'),
    seed: num('seed', 0, (v) => Number.isSafeInteger(v) && v >= 0, 'must be a whole number >= 0'),
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
    this.opts = validateOptions(options, model.config.nCtx, model.config.nVocab);
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
    const o = this.opts;
    const allocs = [];
    const alloc = (n) => { const p = core.malloc(n); allocs.push(p); return p; };
    const strings = (list) => {
      const arr = alloc(4 * Math.max(1, list.length));
      list.forEach((str, i) => { const [p] = core.string(str); allocs.push(p); core.m.HEAPU32[(arr >>> 2) + i] = p; });
      return arr;
    };
    try {
      const [idPtr] = copyIds(core, ids, m.config.nVocab);
      allocs.push(idPtr);
      const stopArr = strings(o.stop);
      const bannedArr = strings(o.banned);
      const biasIds = alloc(4 * Math.max(1, o.bias.length));
      const biasValues = alloc(4 * Math.max(1, o.bias.length));
      o.bias.forEach(([id, v], i) => {
        core.m.HEAP32[(biasIds >>> 2) + i] = id;
        core.m.HEAPF32[(biasValues >>> 2) + i] = v;
      });
      this.g = core.checkPtr(core.m._wasm_generator_create(m.weights, m.tokenizer, idPtr, ids.length, o.maxTokens,
        o.temperature, o.topK, o.topP, o.repetitionPenalty, o.seed, o.ignoreEot ? 1 : 0, stopArr, o.stop.length,
        biasIds, biasValues, o.bias.length, bannedArr, o.banned.length, session ? session.ptr : 0,
        o.contextPolicy === 'slide' ? 1 : 0, o.slideKeep, o.truncatePrompt === 'left' ? 1 : 0, core.err));
      if (this.draft) {
        this.draftSession = core.checkPtr(core.m._wasm_session_create(this.draft.model.weights, 16, core.err));
        core.check(core.m._gpt2_generator_set_draft(this.g, this.draftSession, this.draft.tokens, core.err));
      }
    } finally {
      allocs.forEach((p) => core.free(p));
    }
    if (session) session.generation = this;
    this.piece = core.malloc(16);
    this.t0 = now();
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
    this.cancel();
    return { done: true, value: undefined };
  }

  /** Ends the generation now (synchronously) with stopReason 'cancelled', if still running. */
  cancel() {
    if (!this.done) this.#finish(null, 'cancelled');
  }
}
