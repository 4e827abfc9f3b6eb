// session.js - a token sequence with its own KV cache inside a model's WebAssembly instance
// (src/session.h): append text, generate from where it is, fork, rewind.
import { Gpt2Error } from './errors.js';
import { Generation } from './generation.js';
import { checkOptions, OPTION_NAMES } from './options.js';

/**
 * A session, made by `model.session()`. It keeps its tokens and their keys/values between
 * calls, so each call computes only the tokens it adds. Disposed with its model.
 */
export class Session {
  /**
   * @param {import('./model.js').Gpt2Model} model
   * @param {number} ptr the C session
   */
  constructor(model, ptr) {
    this.model = model;
    this.ptr = ptr;
    this.disposed = false;
    /** The generation running in this session, if any. @type {Generation|null} */
    this.generation = null;
  }

  /** Throws unless the session can be used now (not disposed, no generation running). */
  checkUsable() {
    if (this.disposed) throw new Gpt2Error('the session has been disposed', 'arg');
    if (this.model.disposed) throw new Gpt2Error('the model has been disposed', 'arg');
    if (this.generation) throw new Gpt2Error('a generation is running in this session', 'arg');
    return this.model.core;
  }

  #live() {
    if (this.disposed) throw new Gpt2Error('the session has been disposed', 'arg');
    if (this.model.disposed) throw new Gpt2Error('the model has been disposed', 'arg');
    return this.model.core;
  }

  /** Number of tokens in the session (the position of the next token). */
  get position() {
    const core = this.#live();
    return core.m._gpt2_session_pos(this.ptr);
  }

  /** A copy of the session's token ids. @returns {number[]} */
  get tokens() {
    const core = this.#live();
    const n = core.m._gpt2_session_pos(this.ptr);
    const p = core.m._gpt2_session_tokens(this.ptr) >>> 0;
    return Array.from(core.m.HEAP32.subarray(p >>> 2, (p >>> 2) + n));
  }

  /** The session's text (`model.detokenize(tokens)`). */
  get text() {
    return this.model.detokenize(this.tokens);
  }

  /**
   * Tokens this session has run through the model since it was made (a fork starts at 0).
   * For tests and measurements: an append of n tokens adds n (+1 after a rewind).
   */
  get computedTokens() {
    const core = this.#live();
    return core.m._gpt2_session_computed(this.ptr);
  }

  /**
   * Appends text (tokenized on its own, not merged with the tokens before it) or token ids,
   * and runs them through the model.
   * @param {string|number[]} input
   * @param {{ special?: boolean }} [options]
   * @returns {number[]} the ids appended
   */
  append(input, options) {
    const core = this.checkUsable();
    options = checkOptions(options, OPTION_NAMES.append);
    const ids = typeof input === 'string' ? this.model.tokenize(input, { special: options.special }) : Array.from(input);
    const [p, n] = core.copyIds(ids, this.model.config.nVocab);
    try {
      core.check(core.m._gpt2_session_append(this.ptr, p, n, 0, core.err));
    } finally {
      core.free(p);
    }
    return ids;
  }

  /**
   * Generates from the end of the session (an empty session starts from `<|endoftext|>`); the
   * generated tokens are appended to the session (also when the generation is cancelled:
   * those generated so far). Same options, pieces and summary as `model.generate`;
   * `summary.promptTokens` is the session's length when the generation started. No other
   * session call may run until it ends.
   * @param {import('./index.js').GenerateOptions} [options]
   * @returns {Generation}
   */
  generate(options) {
    this.checkUsable();
    return new Generation(this.model, null, options, this);
  }

  /**
   * A new session with the same tokens and a copy of the KV cache (nothing is recomputed).
   * @returns {Session}
   */
  fork() {
    const core = this.checkUsable();
    const ptr = core.checkPtr(core.m._wasm_session_clone(this.ptr, core.err));
    const s = new Session(this.model, ptr);
    this.model.sessions.add(s);
    return s;
  }

  /**
   * Keeps the first `position` tokens and forgets the rest (0 <= position <= this.position).
   * The next call recomputes one token (the one before the new end).
   * @param {number} position
   */
  rewind(position) {
    const core = this.checkUsable();
    if (!Number.isInteger(position)) throw new Gpt2Error(`rewind: position must be a whole number, got ${position}`, 'arg');
    core.check(core.m._gpt2_session_rewind(this.ptr, position, core.err));
  }

  /**
   * Log-probabilities of `scored` after `context` (used by `model.rank`): rewinds to the
   * longest common prefix of the session and context, appends the rest of context, then
   * scored. Leaves context + scored in the session.
   * @param {number[]} context at least one token
   * @param {number[]} scored
   * @returns {number[]} log p of each scored token
   */
  scoreContinuation(context, scored) {
    const core = this.checkUsable();
    const have = this.tokens;
    let c = 0;
    while (c < have.length && c < context.length && have[c] === context[c]) c++;
    if (c < have.length) core.check(core.m._gpt2_session_rewind(this.ptr, c, core.err));
    if (c < context.length) this.append(context.slice(c));
    const [p, n] = core.copyIds(scored, this.model.config.nVocab);
    const lp = core.malloc(4 * Math.max(1, n));
    try {
      core.check(core.m._gpt2_session_append(this.ptr, p, n, lp, core.err));
      return Array.from(core.m.HEAPF32.subarray(lp >>> 2, (lp >>> 2) + n));
    } finally {
      core.free(p);
      core.free(lp);
    }
  }

  /** Frees the session's memory (a running generation in it is cancelled). Safe to call twice. */
  dispose() {
    if (this.disposed) return;
    if (this.generation) this.generation.cancel();
    this.disposed = true;
    this.model.sessions.delete(this);
    if (!this.model.disposed) this.model.core.m._gpt2_session_free(this.ptr);
    this.ptr = 0;
  }
}
