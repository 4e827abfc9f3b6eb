// model.js - a loaded model: tokenize, detokenize, generate (the iterator is generation.js's
// Generation), score, rank, sessions, logits.
import { LAYOUT, LIMITS } from './constants.js';
import { Gpt2Error } from './errors.js';
import { finetune, saveFiles } from './finetune.js';
import { Generation } from './generation.js';
import { checkOptions, OPTION_NAMES } from './options.js';
import { importNode, isNode } from './platform.js';
import { Session } from './session.js';

export class Gpt2Model {
  /** @param {import('./core.js').Core} core */
  constructor(core, weights, tokenizer, info) {
    this.core = core;
    this.weights = weights;
    this.tokenizer = tokenizer;
    const cfg = core.malloc(7 * 4); // wasm_weights_config: 7 int32
    core.m._wasm_weights_config(weights, cfg);
    const v = (i) => core.i32(cfg + 4 * i);
    /** The model's hyper-parameters. */
    this.config = Object.freeze({
      nLayer: v(0), nHead: v(1), nEmbd: v(2), nCtx: v(3), nVocab: v(4), nInner: v(5), untiedHead: v(6) === 1,
    });
    core.free(cfg);
    this.eotId = core.m._gpt2_tokenizer_eot_id(tokenizer);
    this.info = Object.freeze({
      ...info, parameters: core.m._wasm_weights_params(weights), weightsBytes: core.m._wasm_weights_bytes(weights),
    });
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
  #ids(ids) { return this.core.copyIds(ids, this.config.nVocab); }

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
      state = core.checkPtr(core.m._wasm_state_create(this.weights, Math.min(n, LIMITS.prefillBatch), core.err));
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
    const dec = core.malloc(LAYOUT.decoder.size);
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
    const ptr = core.checkPtr(core.m._wasm_session_create(this.weights, LIMITS.prefillBatch, core.err));
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
