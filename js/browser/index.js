// index.js - gpt2-wasm on the main thread of a web page: the model runs in a Web Worker
// (js/browser/worker.js), so the page stays responsive while it loads and generates.
//
//   import { loadInWorker } from 'gpt2-wasm/browser';
//   const model = await loadInWorker(undefined, { onProgress: (p) => console.log(p.loaded, p.total) });
//   const gen = model.generate('Once upon a time', { maxTokens: 40 });
//   for await (const { text } of gen) output.textContent += text;
//   console.log(await gen.summary);
//   await model.dispose();
//
// The API has the shape of the Node one (js/index.js), with promises where that one returns
// values directly. Model files from URLs are downloaded inside the worker and kept in the
// browser's Cache API (js/browser/cache.js); files given as Blob/File objects are handed to the worker
// by reference, never copied through this thread.
//
// Bundlers: the worker is started as `new Worker(new URL('./worker.js', import.meta.url),
// { type: 'module' })`, the form Vite and webpack detect (they bundle worker.js and what it
// imports, and copy dist/ and models/ files it names). Where the package's files are served
// from elsewhere (a CDN, or a copy beside an esbuild bundle: esbuild does not copy such
// files), `assetsUrl` names that folder, and `workerUrl` a worker script of your own.
import { Gpt2Error, abortError, httpStatus, throwIfAborted } from '../errors.js';
import { checkOptions, OPTION_NAMES } from '../options.js';
import { clearModelCache as clearCache } from './cache.js';
import { assetsFolder, FILE_NAMES } from '../sources.js';

export { Gpt2Error } from '../errors.js';

/**
 * Generation (or fine-tuning) options as posted to the worker: every option but `signal` (which stays here),
 * unchanged (logitBias, bannedWords, contextPolicy, truncatePrompt, ... included; a Map of
 * logit biases survives structured cloning).
 */
function generateOptions(options) {
  const opts = {};
  for (const [k, v] of Object.entries(options || {})) if (k !== 'signal' && v !== undefined) opts[k] = v;
  return opts;
}

/** The worker connection and model id of each RemoteModel (for `into` and `draft`). @type {WeakMap<RemoteModel, { conn: Connection, id: number }>} */
const remotes = new WeakMap();

/**
 * @typedef {import('../index.js').LoadProgress & { notice?: string }} BrowserLoadProgress
 *   load() progress events, plus `notice`: a sentence for the user once the cache could not
 *   be used for a file (e.g. the storage is full); the load goes on without it.
 */

/**
 * @typedef {object} BrowserLoadOptions
 * @property {(progress: BrowserLoadProgress) => void} [onProgress] progress while the files are
 *   downloaded and read (`phase: 'download'`), and once at the end (`phase: 'ready'`)
 * @property {AbortSignal} [signal] aborts the load: the worker is terminated and the promise
 *   rejects with the signal's reason or a DOMException 'AbortError'
 * @property {number} [memoryBudget] the most bytes the model may take: weights + one KV cache (0: no limit)
 * @property {'auto'|'f32'|'f16'|'q8_0'} [precision] how the weights are stored in memory (default 'auto': as in
 *   the file if that fits, else f16, else q8_0)
 * @property {boolean} [cache=true] keep files downloaded from URLs in the browser's Cache API
 *   and use them next time
 * @property {number|'auto'} [threads='auto'] threads in the worker: one per core when the page
 *   is cross-origin isolated, else 1 (a number above 1 needs isolation; elsewhere 1 is used)
 * @property {string|URL} [assetsUrl] the folder holding a copy of the package's files
 *   (js/, dist/, models/), e.g. 'https://cdn.jsdelivr.net/npm/gpt2-wasm@0.1.0/': the worker
 *   starts from its js/worker.js and loads everything else from there (default: the files
 *   next to this module, or as a bundler emitted them)
 * @property {string|URL} [workerUrl] where gpt2-wasm's js/worker.js (or a module worker
 *   script importing it) is served; takes precedence over assetsUrl for the worker
 * @property {RemoteModel} [into] load into that model's worker and WebAssembly instance (a
 *   draft for speculative decoding: `generate(prompt, { draft, temperature: 0 })`); no new
 *   worker is started, the model shares the other's memory and threads, and is disposed
 *   with it (workerUrl, assetsUrl and threads are then not used)
 */

/**
 * @typedef {object} RemoteModelInfo
 * @property {string} source where the model came from (folder URL, or 'objects')
 * @property {number} loadSeconds seconds the load took inside the worker
 * @property {number} weightsBytes bytes of WebAssembly memory the weights take
 * @property {'f32'|'f16'|'q8_0'} precision the precision most weights are stored in
 * @property {string} precisionReason why that precision (e.g. 'auto: f16, because f32 as stored needs ...')
 * @property {Record<string, 'f32'|'f16'|'q8_0'>} matrixPrecision per kind of weight matrix
 * @property {{ hits: number, stored: number, uncached: number } | null} cache files served from
 *   the cache, downloaded into it, and fetched without it; null when caching was off or the
 *   source was not a URL
 * @property {string} [cacheNotice] why some file could not be cached (e.g. storage full)
 */

/**
 * Loads a GPT-2 checkpoint into a new Web Worker.
 * @param {string|URL|Record<string, Blob|File|Response|ReadableStream|ArrayBuffer|ArrayBufferView>|null} [source]
 *   a folder URL (relative URLs resolve against the page), an object of the four files, or
 *   nothing for the embedded model. Blob/File objects are passed by reference; a Response or
 *   ReadableStream is transferred to the worker (it cannot be read here afterwards);
 *   ArrayBuffers and typed arrays are copied.
 * @param {BrowserLoadOptions} [options]
 * @returns {Promise<RemoteModel>}
 * @throws {Gpt2Error} invalid or unreadable files (codes as load()), or the worker failed to start ('io')
 * @throws {DOMException} 'AbortError' when options.signal aborts
 */
export async function loadInWorker(source, options = {}) {
  options = checkOptions(options, OPTION_NAMES.loadInWorker);
  const { onProgress, signal, memoryBudget = 0, precision = 'auto', cache = true, workerUrl, assetsUrl, threads, into } = options;
  throwIfAborted(signal);
  const host = into === undefined ? null : remotes.get(into);
  if (into !== undefined && (!host || into.disposed || into.guest)) {
    throw new Gpt2Error('into must be a model made by loadInWorker (not disposed, not itself loaded with into)', 'arg');
  }
  const [message, transfer] = prepareSource(source);
  const conn = host ? host.conn : new Connection(...startWorker(workerUrl, assetsUrl));
  let rid;
  // Aborting a load into another model stops that load only; otherwise the new worker goes.
  const onAbort = () => (host ? host.conn.abort(rid, abortError(signal)) : conn.close(abortError(signal)));
  if (signal) signal.addEventListener('abort', onAbort, { once: true });
  try {
    const value = await conn.request(
      { op: 'load', source: message, memoryBudget, precision, cache: !!cache, threads, ...(host ? { into: host.id } : {}) },
      { transfer, onProgress: onProgress ? (m) => onProgress(m.event) : undefined, onStart: (r) => { rid = r; } },
    );
    throwIfAborted(signal);
    return new RemoteModel(conn, value, !!host);
  } catch (e) {
    if (!host) conn.close(e);
    if (signal && signal.aborted) throw abortError(signal);
    throw e;
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * What loading a URL folder would take, before its weights are downloaded (in a short-lived
 * worker; see js/plan.js): the download size, the precision the file stores, the precision
 * the load will use with these options and why, and the memory it needs, from the core's own
 * estimate and choice. Reads config.json, the sizes of the other files and model.safetensors'
 * header (HTTP Range requests).
 * @param {string|URL} source a folder URL (relative URLs resolve against the page)
 * @param {{ precision?: 'auto'|'f32'|'f16'|'q8_0', memoryBudget?: number, signal?: AbortSignal,
 *   workerUrl?: string|URL, assetsUrl?: string|URL }} [options] as loadInWorker's
 * @returns {Promise<import('../plan.js').LoadPlan>}
 */
export async function planInWorker(source, options = {}) {
  options = checkOptions(options, OPTION_NAMES.planInWorker);
  const { signal, memoryBudget = 0, precision = 'auto', workerUrl, assetsUrl } = options;
  throwIfAborted(signal);
  const [message] = prepareSource(source);
  if (typeof message !== 'string') throw new Gpt2Error('planInWorker needs a folder URL', 'arg');
  const conn = new Connection(...startWorker(workerUrl, assetsUrl));
  const onAbort = () => conn.close(abortError(signal));
  if (signal) signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await conn.request({ op: 'plan', source: message, memoryBudget, precision });
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
    conn.close(new Gpt2Error('the plan is done', 'arg'));
  }
}

/**
 * Starts the worker: [worker, its script's URL]. The default is written in the literal form
 * bundlers detect. A script on another origin (a CDN) cannot be a worker itself: a
 * same-origin blob: worker imports it (the script must then be served with CORS).
 * @param {string|URL|undefined} workerUrl @param {string|URL|undefined} assetsUrl
 * @returns {[Worker, URL]}
 */
function startWorker(workerUrl, assetsUrl) {
  if (workerUrl === undefined && assetsUrl === undefined) {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'gpt2-wasm' });
    const script = './worker.js'; // (for messages; not a literal URL, which bundlers would copy once more)
    return [worker, new URL(script, import.meta.url)];
  }
  let url;
  if (workerUrl !== undefined) {
    try {
      url = new URL(String(workerUrl), baseUrl());
    } catch {
      throw new Gpt2Error(`workerUrl must be a URL, got ${JSON.stringify(String(workerUrl))}`, 'arg');
    }
  } else {
    url = new URL('js/browser/worker.js', assetsFolder(assetsUrl));
  }
  const here = globalThis.location && globalThis.location.origin;
  if (!here || url.origin === here || url.protocol === 'blob:' || url.protocol === 'data:') {
    return [new Worker(url, { type: 'module', name: 'gpt2-wasm' }), url];
  }
  const trampoline = URL.createObjectURL(new Blob([`import ${JSON.stringify(url.href)};\n`], { type: 'text/javascript' }));
  const worker = new Worker(trampoline, { type: 'module', name: 'gpt2-wasm' });
  setTimeout(() => URL.revokeObjectURL(trampoline), 60000); // the worker has fetched it long before
  return [worker, url];
}

/**
 * Why a worker script did not start, in words: the HTTP status of its URL (a worker's error
 * event tells nothing), or that the script or one of its imports could not be run.
 * @param {URL} url @param {string} [message] the error event's message, if any
 * @returns {Promise<string>}
 */
async function workerFailure(url, message) {
  const fix = 'set the workerUrl or assetsUrl option of loadInWorker() to where gpt2-wasm\'s js/worker.js is served';
  if (message) return `${message} (in ${url.href})`;
  let r;
  try {
    r = await fetch(url.href, { method: 'GET', cache: 'no-store' });
    r.body?.cancel().catch(() => {});
  } catch (e) {
    return `the worker script ${url.href} could not be fetched (${e.message}); ${fix}`;
  }
  if (!r.ok) return `the worker script ${url.href} could not be loaded: ${httpStatus(r)}; ${fix}`;
  const type = (r.headers.get('content-type') || '').split(';')[0].trim();
  if (!/^(text|application)\/(javascript|ecmascript|x-javascript)$/.test(type)) {
    return `the worker script ${url.href} is served as '${type || 'no Content-Type'}', not JavaScript (module workers need a JavaScript MIME type)`;
  }
  return `the worker script ${url.href} (HTTP ${r.status}) or a module it imports could not be loaded; ` +
    'check the browser console for the failing URL (or a cross-origin script without CORS)';
}

/**
 * Removes every model file kept by the browser cache.
 * @returns {Promise<number>} how many entries were removed
 */
export function clearModelCache() {
  return clearCache();
}

/**
 * Whether the page is cross-origin isolated (COOP same-origin + COEP require-corp), which
 * browsers require for SharedArrayBuffer and precise timers.
 * @returns {boolean}
 */
export function isCrossOriginIsolated() {
  return globalThis.crossOriginIsolated === true;
}

/**
 * A model loaded in a worker; the shape of Gpt2Model, with promises. One worker per model:
 * dispose() terminates it.
 */
export class RemoteModel {
  /** @param {Connection} conn @param {any} loaded the worker's answer to 'load' @param {boolean} [guest] loaded `into` another */
  constructor(conn, loaded, guest = false) {
    this.#conn = conn;
    this.#id = loaded.id;
    remotes.set(this, { conn, id: loaded.id });
    /** @type {boolean} whether it was loaded into another model's worker (`into`) */
    this.guest = guest;
    /** @type {Readonly<import('../index.js').ModelConfig>} the model's hyper-parameters */
    this.config = Object.freeze(loaded.config);
    /** @type {Readonly<RemoteModelInfo>} facts about the load */
    this.info = Object.freeze(loaded.info);
    /** @type {number} the id of '<|endoftext|>' */
    this.eotId = loaded.eotId;
  }

  #conn;
  #id;

  #disposed = false;

  /** Whether dispose() was called (or the worker died, or the model it was loaded into was disposed). */
  get disposed() { return this.#disposed || this.#conn.closed; }

  /**
   * Token ids of text.
   * @param {string} text
   * @param {{ special?: boolean }} [options] special: '<|endoftext|>' is the special token
   * @returns {Promise<number[]>}
   */
  tokenize(text, options = {}) {
    options = checkOptions(options, OPTION_NAMES.tokenize);
    return this.#conn.request({ op: 'tokenize', id: this.#id, text, options: { special: !!options.special } });
  }

  /**
   * Text of token ids (invalid UTF-8 becomes U+FFFD).
   * @param {number[]|Int32Array|Uint32Array} ids
   * @returns {Promise<string>}
   */
  detokenize(ids) {
    return this.#conn.request({ op: 'detokenize', id: this.#id, ids });
  }

  /**
   * Per-token log-probabilities, ranks and the most likely alternatives of a text (or token
   * ids) under the model (see Gpt2Model.score).
   * @param {string|number[]} textOrIds
   * @param {{ special?: boolean, topK?: number }} [options] topK: alternatives per token (default 5)
   * @returns {Promise<import('../index.js').ScoreResult>}
   */
  score(textOrIds, options = {}) {
    options = checkOptions(options, OPTION_NAMES.score);
    const opts = { special: !!options.special };
    if (options.topK !== undefined) opts.topK = options.topK;
    return this.#conn.request({ op: 'score', id: this.#id, text: textOrIds, options: opts });
  }

  /**
   * Zero-shot ranking of choices as continuations of prompt (see Gpt2Model.rank), best first.
   * @param {string} prompt
   * @param {string[]} choices
   * @param {{ by?: 'mean'|'sum', special?: boolean }} [options]
   * @returns {Promise<import('../index.js').RankResult[]>}
   */
  rank(prompt, choices, options = {}) {
    options = checkOptions(options, OPTION_NAMES.rank);
    const opts = {};
    if (options.by !== undefined) opts.by = options.by;
    if (options.special !== undefined) opts.special = !!options.special;
    return this.#conn.request({ op: 'rank', id: this.#id, prompt, choices, options: opts });
  }

  /**
   * A new, empty session living in the worker (see Session in js/session.js): its tokens
   * and KV cache stay there, calls go through messages.
   * @returns {Promise<RemoteSession>}
   */
  async session() {
    const { sid, position } = await this.#conn.request({ op: 'session', id: this.#id });
    return new RemoteSession(this.#conn, sid, position);
  }

  /**
   * Generates a continuation in the worker. The result is an async iterator of pieces
   * { text, token } (token null for a piece that only flushes text) with a `summary` promise.
   * Invalid options are reported by the first next() (the iterator throws Gpt2Error 'arg').
   * options.signal aborts: the iterator throws AbortError and summary rejects. Leaving the
   * loop early (`break`) stops the worker's generation; summary then resolves with
   * stopReason 'cancelled' and the text and tokens received.
   * @param {string|number[]} prompt text, or token ids
   * @param {import('../index.js').GenerateOptions} [options]
   * @returns {RemoteGeneration}
   */
  generate(prompt, options = {}) {
    options = checkOptions(options, OPTION_NAMES.generate);
    const opts = generateOptions(options);
    if (options.draft !== undefined) {
      const d = remotes.get(options.draft);
      if (!d || d.conn !== this.#conn || options.draft === this) {
        throw new Gpt2Error('draft must be a model loaded into this one\'s worker: loadInWorker(source, { into: model })', 'arg');
      }
      opts.draft = d.id; // the worker finds the model by its id
    }
    const request = { op: 'generate', id: this.#id, prompt, options: opts };
    return new RemoteGeneration(this.#conn, request, options.signal);
  }

  /**
   * Fine-tunes the model in its worker (see Gpt2Model.finetune): an async iterator of one
   * { step, loss, valLoss?, lr, gradNorm, tokensPerSecond } per optimiser step, streamed like
   * generate(). Unknown option names throw at once; other invalid options or data are reported
   * by the first next() (Gpt2Error 'arg').
   * options.signal stops at the next step boundary: every step the worker finished is still
   * yielded, then the iterator throws AbortError, so the steps seen are the steps in the model.
   * Leaving the loop (`break`) also stops the worker at a step boundary (it may have finished a
   * step not taken). Either way the worker's model then holds the weights trained so far.
   * @param {string|number[]|Int32Array|Uint32Array} textOrIds
   * @param {import('../index.js').FinetuneOptions} [options]
   * @returns {AsyncIterableIterator<import('../index.js').FinetuneStep>}
   */
  finetune(textOrIds, options = {}) {
    options = checkOptions(options, OPTION_NAMES.finetune);
    const request = { op: 'finetune', id: this.#id, data: textOrIds, options: generateOptions(options) };
    return new RemoteFinetune(this.#conn, request, options.signal);
  }

  /**
   * The model as a Hugging Face folder (e.g. after finetune()): the four files as bytes,
   * made in the worker.
   * @param {{ dtype?: 'f32'|'f16' }} [options] the matrices' dtype in model.safetensors (default 'f32')
   * @returns {Promise<Record<'config.json'|'model.safetensors'|'vocab.json'|'merges.txt', Uint8Array>>}
   */
  save(options = {}) {
    options = checkOptions(options, ['dtype']);
    return this.#conn.request({ op: 'save', id: this.#id, options: generateOptions(options) });
  }

  /**
   * Terminates the worker, freeing all of the model's memory. Pending calls reject and
   * running generations throw Gpt2Error 'arg' ('the model has been disposed'). Safe to call twice.
   * @returns {Promise<void>}
   */
  async dispose() {
    if (this.guest) { // loaded `into` another model: free it there, keep the worker
      if (this.#disposed) return;
      this.#disposed = true;
      if (!this.#conn.closed) await this.#conn.request({ op: 'dispose', id: this.#id }).catch(() => {});
      return;
    }
    this.#conn.close(new Gpt2Error('the model has been disposed', 'arg'));
  }
}

/**
 * A session living in the worker (made by RemoteModel.session()): the shape of Session, with
 * promises. `position`, `tokens` and `text` are getters returning promises (asked of the
 * worker); `lastPosition` is the position reported by the latest answer, without a round trip.
 * Calls are answered in order; while a generation runs in the session, other calls reject
 * with Gpt2Error 'arg' (as in Node). Disposed with its model.
 */
export class RemoteSession {
  /** @param {Connection} conn @param {number} sid @param {number} position */
  constructor(conn, sid, position) {
    this.#conn = conn;
    this.#sid = sid;
    /** @type {number} the session's length after the latest call that reported it */
    this.lastPosition = position;
  }

  #conn; #sid;
  #disposed = false;

  /** Whether dispose() was called (or the model's worker is gone). */
  get disposed() { return this.#disposed || this.#conn.closed; }

  async #state() {
    const state = await this.#conn.request({ op: 'sessionState', sid: this.#sid });
    this.lastPosition = state.position;
    return state;
  }

  /** Number of tokens in the session. @returns {Promise<number>} */
  get position() { return this.#state().then((s) => s.position); }

  /** A copy of the session's token ids. @returns {Promise<number[]>} */
  get tokens() { return this.#state().then((s) => s.tokens); }

  /** The session's text. @returns {Promise<string>} */
  get text() { return this.#state().then((s) => s.text); }

  /**
   * Appends text (tokenized on its own) or token ids and runs them through the model.
   * @param {string|number[]} input
   * @param {{ special?: boolean }} [options]
   * @returns {Promise<number[]>} the ids appended
   */
  async append(input, options = {}) {
    options = checkOptions(options, OPTION_NAMES.append);
    const { ids, position } = await this.#conn.request({ op: 'sessionAppend', sid: this.#sid, input, options: { special: !!options.special } });
    this.lastPosition = position;
    return ids;
  }

  /**
   * Generates from the end of the session, appending the generated tokens to it (see
   * Session.generate); streams like RemoteModel.generate. Options pass through unchanged.
   * @param {import('../index.js').GenerateOptions} [options]
   * @returns {RemoteGeneration}
   */
  generate(options = {}) {
    options = checkOptions(options, OPTION_NAMES.generate);
    const request = { op: 'sessionGenerate', sid: this.#sid, options: generateOptions(options) };
    return new RemoteGeneration(this.#conn, request, options.signal, (done) => {
      if (typeof done.position === 'number') this.lastPosition = done.position;
    });
  }

  /**
   * A new session with the same tokens and a copy of the KV cache.
   * @returns {Promise<RemoteSession>}
   */
  async fork() {
    const { sid, position } = await this.#conn.request({ op: 'sessionFork', sid: this.#sid });
    return new RemoteSession(this.#conn, sid, position);
  }

  /**
   * Keeps the first `position` tokens and forgets the rest.
   * @param {number} position
   * @returns {Promise<void>}
   */
  async rewind(position) {
    const answer = await this.#conn.request({ op: 'sessionRewind', sid: this.#sid, position });
    this.lastPosition = answer.position;
  }

  /** Frees the session in the worker. Safe to call twice, and after the model's dispose. @returns {Promise<void>} */
  async dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#conn.closed) return;
    await this.#conn.request({ op: 'sessionDispose', sid: this.#sid }).catch(() => {});
  }
}

/**
 * One generation running in the worker: an async iterator of { text, token } and `summary`,
 * a promise of { tokens, promptTokens, stopReason, text, timings }.
 */
export class RemoteGeneration {
  /**
   * @param {Connection} conn
   * @param {object} request the 'generate' or 'sessionGenerate' message
   * @param {AbortSignal} [signal]
   * @param {(done: any) => void} [onDone] sees the worker's 'done' message
   */
  constructor(conn, request, signal, onDone) {
    this.#conn = conn;
    this.#request = request;
    this.#signal = signal;
    this.#onDone = onDone;
    /** @type {Promise<import('../index.js').GenerationSummary>} settles when the generation ends */
    this.summary = new Promise((resolve, reject) => { this.#settle = { resolve, reject }; });
    this.summary.catch(() => {}); // a rejected summary is also thrown by the iterator
    if (signal) {
      this.#onAbort = () => this.#fail(abortError(signal), true);
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  #conn; #request; #signal; #settle; #onAbort; #onDone;
  #rid = undefined;       // request id once started
  #queue = [];            // pieces received, not yet taken
  #waiter = null;         // { resolve, reject } of a pending next()
  #ended = false;         // no more pieces will be taken
  #error = null;          // the error next() throws (once)
  #cancelled = false;     // return() was called before the end
  #text = '';             // text taken by the consumer
  #tokens = 0;            // tokens taken by the consumer

  [Symbol.asyncIterator]() { return this; }

  /** @returns {Promise<IteratorResult<{ text: string, token: number|null }>>} */
  async next() {
    if (this.#error) {
      const e = this.#error;
      this.#error = null;
      throw e;
    }
    if (this.#queue.length) return { done: false, value: this.#take() };
    if (this.#ended) return { done: true, value: undefined };
    if (this.#signal && this.#signal.aborted) {
      this.#fail(abortError(this.#signal), false);
      return this.next();
    }
    if (this.#rid === undefined) this.#start();
    return new Promise((resolve, reject) => { this.#waiter = { resolve, reject }; });
  }

  /** Stops early (called by `break` in for await); the worker stops generating. */
  async return() {
    if (this.#ended) return { done: true, value: undefined };
    this.#ended = true;
    this.#cancelled = true;
    this.#queue = [];
    this.#detach();
    if (this.#rid === undefined) {
      this.#settle.resolve({ tokens: 0, promptTokens: 0, stopReason: 'cancelled', text: '', timings: { firstTokenMs: 0, totalMs: 0, tokensPerSecond: null } });
    } else {
      this.#conn.send({ op: 'cancel', rid: this.#rid });
    }
    return { done: true, value: undefined };
  }

  #start() {
    try {
      this.#rid = this.#conn.stream(this.#request, (m) => this.#onMessage(m), (e) => this.#onError(e));
    } catch (e) {
      this.#fail(e, false);
    }
  }

  #take() {
    const piece = this.#queue.shift();
    this.#text += piece.text;
    if (piece.token !== null) this.#tokens++;
    return piece;
  }

  #onMessage(m) {
    if (m.type === 'piece') {
      if (this.#ended) return;
      if (this.#waiter) {
        const w = this.#waiter;
        this.#waiter = null;
        this.#queue.push(m.piece);
        w.resolve({ done: false, value: this.#take() });
      } else {
        this.#queue.push(m.piece);
      }
    } else if (m.type === 'done') {
      if (this.#onDone) this.#onDone(m);
      this.#detach();
      this.#conn.forget(this.#rid);
      if (this.#cancelled) {
        // The worker may have made a token or two more than were taken: report what was taken.
        this.#settle.resolve({ ...m.summary, stopReason: 'cancelled', tokens: this.#tokens, text: this.#text });
        return;
      }
      this.#ended = true;
      this.#settle.resolve(m.summary);
      this.#wake();
    }
  }

  #onError(e) {
    this.#detach();
    if (this.#cancelled) {
      this.#settle.resolve({ tokens: this.#tokens, promptTokens: 0, stopReason: 'cancelled', text: this.#text, timings: { firstTokenMs: 0, totalMs: 0, tokensPerSecond: null } });
      return;
    }
    this.#fail(e, false);
  }

  /** Ends with an error: summary rejects, the next next() throws it. */
  #fail(e, tellWorker) {
    if (this.#ended) return;
    this.#ended = true;
    this.#queue = [];
    if (this.#rid !== undefined) {
      if (tellWorker) this.#conn.send({ op: 'abort', rid: this.#rid });
      this.#conn.forget(this.#rid);
    }
    this.#detach();
    this.#settle.reject(e);
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.reject(e);
    } else {
      this.#error = e;
    }
  }

  #wake() {
    if (this.#waiter && !this.#queue.length) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve({ done: true, value: undefined });
    }
  }

  /** Stops listening to the signal (the generation has ended or been cancelled). */
  #detach() {
    if (this.#signal && this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort);
    this.#onAbort = null;
  }
}

/**
 * One fine-tuning running in the worker: an async iterator of its steps. Unlike a generation,
 * an abort does not drop what is on its way: the steps the worker finished before it saw the
 * abort are yielded first, then AbortError is thrown.
 */
class RemoteFinetune {
  /** @param {Connection} conn @param {object} request the 'finetune' message @param {AbortSignal} [signal] */
  constructor(conn, request, signal) {
    this.#conn = conn;
    this.#request = request;
    this.#signal = signal;
  }

  #conn; #request; #signal;
  #rid = undefined;  // request id once started
  #queue = [];       // steps received, not yet taken
  #waiter = null;    // { resolve, reject } of a pending next()
  #end = null;       // { error } or { error: null } once the worker has finished
  #onAbort = () => this.#conn.send({ op: 'abort', rid: this.#rid });

  [Symbol.asyncIterator]() { return this; }

  /** @returns {Promise<IteratorResult<import('../index.js').FinetuneStep>>} */
  async next() {
    if (this.#queue.length) return { done: false, value: this.#queue.shift() };
    if (this.#end) return this.#finish();
    if (this.#rid === undefined) {
      throwIfAborted(this.#signal);
      this.#rid = this.#conn.stream(this.#request, (m) => this.#onMessage(m), (e) => this.#onEnd(e));
      if (this.#signal) this.#signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    return new Promise((resolve, reject) => { this.#waiter = { resolve, reject }; });
  }

  /** Stops early (`break`): the worker stops at its next step boundary. */
  async return() {
    if (this.#rid !== undefined && !this.#end) {
      this.#conn.send({ op: 'abort', rid: this.#rid });
      this.#conn.forget(this.#rid);
    }
    this.#queue = [];
    this.#onEnd(null);
    return { done: true, value: undefined };
  }

  #onMessage(m) {
    if (m.type === 'piece') this.#queue.push(m.piece);
    else if (m.type === 'done') {
      this.#conn.forget(this.#rid);
      this.#onEnd(null);
      return;
    }
    this.#wake();
  }

  #onEnd(error) {
    if (this.#end) return;
    if (this.#signal) this.#signal.removeEventListener('abort', this.#onAbort);
    const aborted = error && error.name === 'AbortError' && this.#signal && this.#signal.aborted;
    this.#end = { error: aborted ? abortError(this.#signal) : error };
    this.#wake();
  }

  /** The end, once the queue is empty: throws the error (once), then done. */
  #finish() {
    const { error } = this.#end;
    this.#end = { error: null };
    if (error) throw error;
    return { done: true, value: undefined };
  }

  #wake() {
    if (!this.#waiter) return;
    const w = this.#waiter;
    if (this.#queue.length) {
      this.#waiter = null;
      w.resolve({ done: false, value: this.#queue.shift() });
    } else if (this.#end) {
      this.#waiter = null;
      try {
        w.resolve(this.#finish());
      } catch (e) {
        w.reject(e);
      }
    }
  }
}

/** Requests and replies over one worker; errors come back as Gpt2Error / AbortError. */
class Connection {
  /** @param {Worker} worker @param {URL} url its script's URL (for errors) */
  constructor(worker, url) {
    this.worker = worker;
    this.nextRid = 1;
    /** @type {Map<number, { onMessage: (m: any) => void, onError: (e: any) => void }>} */
    this.pending = new Map();
    this.closed = false;
    worker.onmessage = (event) => {
      const m = event.data;
      const p = this.pending.get(m.rid);
      if (!p) return; // an answer nobody waits for any more (aborted, cancelled)
      if (m.type === 'error') {
        this.pending.delete(m.rid);
        p.onError(toError(m.error));
      } else {
        p.onMessage(m);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      if (this.closed) return;
      workerFailure(url, event.message).then((why) => this.close(new Gpt2Error(`gpt2-wasm worker failed: ${why}`, 'io')));
    };
    worker.onmessageerror = () => this.close(new Gpt2Error('gpt2-wasm worker: a message could not be read', 'io'));
  }

  /** Posts a message without waiting for an answer. */
  send(msg) {
    if (!this.closed) this.worker.postMessage(msg);
  }

  /**
   * Posts a request whose answer is one 'result' (after any 'progress' messages).
   * @returns {Promise<any>}
   */
  request(msg, { transfer, onProgress, onStart } = {}) {
    return new Promise((resolve, reject) => {
      const rid = this.stream(msg, (m) => {
        if (m.type === 'progress') {
          if (onProgress) onProgress(m);
        } else if (m.type === 'result') {
          this.pending.delete(rid);
          resolve(m.value);
        }
      }, reject, transfer);
      if (onStart) onStart(rid);
    });
  }

  /** Aborts request rid in the worker; its promise rejects with error at once. */
  abort(rid, error) {
    const p = this.pending.get(rid);
    if (!p) return;
    this.send({ op: 'abort', rid });
    this.pending.delete(rid);
    p.onError(error);
  }

  /** Posts a request whose answers go to onMessage until forget(rid); returns rid. */
  stream(msg, onMessage, onError, transfer = []) {
    if (this.closed) throw this.closeError;
    const rid = this.nextRid++;
    this.pending.set(rid, { onMessage, onError });
    try {
      this.worker.postMessage({ ...msg, rid }, transfer);
    } catch (e) {
      this.pending.delete(rid);
      if (e && e.name === 'DataCloneError') {
        throw new Gpt2Error(`cannot pass this to the worker: ${e.message} (use a URL, Blob or File)`, 'arg');
      }
      throw e;
    }
    return rid;
  }

  /** Stops routing answers of rid. */
  forget(rid) {
    this.pending.delete(rid);
  }

  /** Terminates the worker; everything pending fails with error. */
  close(error) {
    if (this.closed) return;
    this.closed = true;
    this.closeError = error;
    this.worker.terminate();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.onError(error);
  }
}

/** An error from the worker ({ name, message, code }) as the error the Node API would throw. */
function toError({ name, message, code }) {
  if (name === 'AbortError') return new DOMException(message, 'AbortError');
  return new Gpt2Error(message, code || 'unknown');
}

function baseUrl() {
  return (globalThis.document && document.baseURI) || (globalThis.location && location.href) || undefined;
}

/**
 * What to post for a source: a URL string (absolute), undefined, or an object of files, and
 * the objects to transfer (streams).
 */
function prepareSource(source) {
  if (source === undefined || source === null) return [undefined, []];
  if (typeof source === 'string' || source instanceof URL) {
    let url;
    try {
      url = new URL(String(source), baseUrl());
    } catch {
      throw new Gpt2Error(`not a URL: ${source}`, 'arg');
    }
    return [url.href, []];
  }
  if (typeof source !== 'object') throw new Gpt2Error('model source must be a URL or an object of files', 'arg');
  const files = {};
  const transfer = [];
  for (const name of FILE_NAMES) {
    let v = source[name];
    if (v === undefined || v === null) throw new Gpt2Error(`the model object has no '${name}'`, 'arg');
    if (typeof Response !== 'undefined' && v instanceof Response) {
      if (!v.ok) throw new Gpt2Error(`${name}: response status ${v.status}`, 'io');
      const len = v.headers.get('content-length');
      const enc = v.headers.get('content-encoding');
      const size = len !== null && (!enc || enc === 'identity') && Number.isSafeInteger(Number(len)) ? Number(len) : undefined;
      const body = v.body || new ReadableStream({ start: (c) => c.close() });
      v = { kind: 'response-body', body, size };
      transfer.push(body);
    } else if (typeof ReadableStream !== 'undefined' && v instanceof ReadableStream) {
      transfer.push(v);
    }
    files[name] = v;
  }
  return [files, transfer];
}
