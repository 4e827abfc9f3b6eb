// index.js - gpt2-wasm on the main thread of a web page ('gpt2-wasm/browser'): the model runs
// in a Web Worker (js/browser/worker.js), so the page stays responsive while it loads and generates.
//
//   import { loadInWorker } from 'gpt2-wasm/browser';
//   const model = await loadInWorker(undefined, { onProgress: (p) => console.log(p.loaded, p.total) });
//   const gen = model.generate('Once upon a time', { maxTokens: 40 });
//   for await (const { text } of gen) output.textContent += text;
//   console.log(await gen.summary);
//   await model.dispose();
//
// The API has the shape of the shared one (js/index.js), with promises where that one returns
// values directly: RemoteModel and RemoteSession mirror the worker's Gpt2Model and Session (each
// method is a message, js/browser/protocol.js; this thread never loads those classes). Model files from URLs are downloaded inside the worker and
// kept in the browser's Cache API (js/browser/cache.js); files given as Blob/File objects are
// handed to the worker by reference, never copied through this thread. Types: index.d.ts here.
//
// Bundlers: the worker is started as `new Worker(new URL('./worker.js', import.meta.url),
// { type: 'module' })` (js/browser/connection.js), the form Vite and webpack detect (they bundle
// worker.js and what it imports, and copy dist/ and models/ files it names). Where the
// package's files are served from elsewhere (a CDN, or a copy beside an esbuild bundle: esbuild
// does not copy such files), `assetsUrl` names that folder, and `workerUrl` a worker script of
// your own.
import { Gpt2Error, abortError, throwIfAborted } from '../errors.js';
import { checkOptions, OPTION_NAMES } from '../options.js';
import { Connection, prepareSource, startWorker } from './connection.js';
import { HANDLE, mapArg, SIGNAL } from './protocol.js';

export { Gpt2Error } from '../errors.js';
/** Removes every model file kept by the browser cache; resolves with how many entries were removed. */
export { clearModelCache } from './cache.js';

/** The worker connection and handle id of each RemoteModel and RemoteSession. @type {WeakMap<object, { conn: Connection, handle: number, disposed: boolean }>} */
const remotes = new WeakMap();

/**
 * Loads a GPT-2 checkpoint into a new Web Worker.
 * @param {string|URL|Record<string, Blob|File|Response|ReadableStream|ArrayBuffer|ArrayBufferView>|null} [source]
 *   a folder URL (relative URLs resolve against the page), an object of the four files, or
 *   nothing for the embedded model. Blob/File objects are passed by reference; a Response or
 *   ReadableStream is transferred to the worker (it cannot be read here afterwards);
 *   ArrayBuffers and typed arrays are copied.
 * @param {import('./index.js').BrowserLoadOptions} [options] (declared in index.d.ts)
 * @returns {Promise<RemoteModel>}
 * @throws {Gpt2Error} invalid or unreadable files (codes as load()), or the worker failed to start ('io')
 * @throws {DOMException} 'AbortError' when options.signal aborts
 */
export async function loadInWorker(source, options = {}) {
  options = checkOptions(options, OPTION_NAMES.loadInWorker);
  const { onProgress, signal, memoryBudget = 0, precision = 'auto', cache = true, workerUrl, assetsUrl, threads, into } = options;
  throwIfAborted(signal);
  const host = into instanceof RemoteModel ? remotes.get(into) : null;
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
    const { value } = await conn.request(
      { op: 'load', source: message, memoryBudget, precision, cache: !!cache, threads, ...(host ? { into: host.handle } : {}) },
      { transfer, onProgress: onProgress ? (m) => onProgress(m.event) : undefined, onStart: (r) => { rid = r; } },
    );
    throwIfAborted(signal);
    conn.api = value.api;
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
    return (await conn.request({ op: 'plan', source: message, memoryBudget, precision })).value;
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
    conn.close(new Gpt2Error('the plan is done', 'arg'));
  }
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
 * What the page holds of a model or session kept in the worker. The methods and getters of
 * Gpt2Model and Session, as the worker lists them, are mirrored onto RemoteModel and
 * RemoteSession: each becomes a 'call' message and returns a promise of the worker's answer,
 * so a method added to those classes works here with no code. Written by hand are only what
 * cannot be generic: the methods returning a stream (generate, finetune: they return an
 * iterator at once), save (no folder here) and dispose (it ends the worker).
 */
class Remote {
  /**
   * The object is a Proxy that answers the names the worker lists for its kind (conn.api,
   * sent with each load) that the class does not define: a getter with a promise of the
   * worker's value, a method with a function calling it.
   * @param {Connection} conn @param {number} handle the worker's id of the object @param {'model'|'session'} kind
   */
  constructor(conn, handle, kind) {
    const how = (t, name) => (typeof name === 'string' && !(name in t) && Object.hasOwn(conn.api[kind], name) ? conn.api[kind][name] : undefined);
    const proxy = new Proxy(this, {
      get(t, name, receiver) {
        const h = how(t, name);
        if (h === 'get') return call(receiver, name, []);
        if (h === 'call') return (...args) => call(receiver, name, args);
        return Reflect.get(t, name, receiver);
      },
      has: (t, name) => name in t || how(t, name) !== undefined,
    });
    remotes.set(proxy, { conn, handle, disposed: false });
    return proxy;
  }

  /** Whether dispose() was called (or the worker is gone, or the model it was loaded into was disposed). */
  get disposed() {
    const r = remotes.get(this);
    return r.disposed || r.conn.closed;
  }
}

/**
 * A call's message and the signal found in its arguments: models and sessions become handle
 * markers (they must live in the same worker), an AbortSignal a signal marker.
 * @param {Remote} remote @param {string} method @param {unknown[]} args
 */
function callMessage(remote, method, args) {
  const { conn, handle } = remotes.get(remote);
  let signal;
  const wired = args.map((arg) => mapArg(arg, (v, key) => {
    if (v instanceof Remote) {
      const r = remotes.get(v);
      if (r.conn !== conn) throw new Gpt2Error(`${key || 'a model'} must be a model loaded into this one's worker: loadInWorker(source, { into: model })`, 'arg');
      return { [HANDLE]: r.handle };
    }
    if (typeof AbortSignal !== 'undefined' && v instanceof AbortSignal) {
      signal = v;
      return { [SIGNAL]: true };
    }
    return v;
  }));
  return { conn, message: { op: 'call', target: handle, method, args: wired }, signal };
}

/** Takes what every answer about a target reports (a session's position). */
function noteState(remote, m) {
  if (typeof m.position === 'number' && remote instanceof RemoteSession) remote.lastPosition = m.position;
}

/**
 * Calls `method` of the worker's object; resolves with its value (a session the worker
 * returns becomes a RemoteSession). An AbortSignal among the arguments aborts the call.
 * @param {Remote} remote @param {string} method @param {unknown[]} args
 */
async function call(remote, method, args) {
  // A misspelled option is reported here, before the worker sees it (the method's OPTION_NAMES entry).
  const last = args[args.length - 1];
  if (Object.hasOwn(OPTION_NAMES, method) && last && Object.getPrototypeOf(last) === Object.prototype) checkOptions(last, OPTION_NAMES[method]);
  const { conn, message, signal } = callMessage(remote, method, args);
  throwIfAborted(signal);
  let rid;
  const onAbort = () => conn.abort(rid, abortError(signal));
  if (signal) signal.addEventListener('abort', onAbort, { once: true });
  try {
    const m = await conn.request(message, { onStart: (r) => { rid = r; } });
    noteState(remote, m);
    const v = m.value;
    if (v && typeof v === 'object' && Object.hasOwn(v, HANDLE)) {
      if (v.kind !== 'session') throw new Gpt2Error(`${method} returned a ${v.kind}, which the page cannot hold`, 'unsupported');
      return new RemoteSession(conn, v[HANDLE], v.position);
    }
    return v;
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

/** Options as sent for a stream: `signal` replaced by the worker's own (the page's is watched here), undefined values left out. */
function streamOptions(options) {
  const opts = { signal: { [SIGNAL]: true } };
  for (const [k, v] of Object.entries(options)) if (k !== 'signal' && v !== undefined) opts[k] = v;
  return opts;
}

/**
 * A model loaded in a worker: the shape of Gpt2Model (tokenize, detokenize, score, rank,
 * session, logits, ... mirrored from it), with promises. One worker per model: dispose()
 * terminates it.
 */
export class RemoteModel extends Remote {
  /** @param {Connection} conn @param {any} loaded the worker's answer to 'load' @param {boolean} [guest] loaded `into` another */
  constructor(conn, loaded, guest = false) {
    super(conn, loaded[HANDLE], 'model');
    /** @type {boolean} whether it was loaded into another model's worker (`into`) */
    this.guest = guest;
    /** @type {Readonly<import('../index.js').ModelConfig>} the model's hyper-parameters */
    this.config = Object.freeze(loaded.config);
    /** @type {Readonly<import('./index.js').RemoteModelInfo>} facts about the load */
    this.info = Object.freeze(loaded.info);
    /** @type {number} the id of '<|endoftext|>' */
    this.eotId = loaded.eotId;
  }

  /**
   * Generates a continuation in the worker: an async iterator of pieces { text, token } with a
   * `summary` promise. Unknown option names throw at once; invalid values are reported by the
   * first next() (Gpt2Error 'arg'). options.signal aborts: the iterator throws AbortError and
   * summary rejects. Leaving the loop early (`break`) stops the worker's generation; summary
   * then resolves with stopReason 'cancelled' and the text and tokens received.
   * @param {string|number[]} prompt text, or token ids
   * @param {import('../index.js').GenerateOptions} [options]
   * @returns {RemoteGeneration}
   */
  generate(prompt, options = {}) {
    options = checkOptions(options, OPTION_NAMES.generate);
    return new RemoteGeneration(callMessage(this, 'generate', [prompt, streamOptions(options)]), options.signal, this);
  }

  /**
   * Fine-tunes the model in its worker (see Gpt2Model.finetune): an async iterator of one step
   * per optimiser step, streamed like generate(). options.signal stops at the next step
   * boundary: every step the worker finished is still yielded, then the iterator throws
   * AbortError. Leaving the loop (`break`) also stops the worker at a step boundary. Either way
   * the worker's model then holds the weights trained so far.
   * @param {string|number[]|Int32Array|Uint32Array} textOrIds
   * @param {import('../index.js').FinetuneOptions} [options]
   * @returns {AsyncIterableIterator<import('../index.js').FinetuneStep>}
   */
  finetune(textOrIds, options = {}) {
    options = checkOptions(options, OPTION_NAMES.finetune);
    return new RemoteGeneration(callMessage(this, 'finetune', [textOrIds, streamOptions(options)]), options.signal, this, true);
  }

  /**
   * The model as a Hugging Face folder (e.g. after finetune()): the four files as bytes.
   * @param {{ dtype?: 'f32'|'f16' }} [options] the matrices' dtype in model.safetensors (default 'f32')
   * @returns {Promise<Record<'config.json'|'model.safetensors'|'vocab.json'|'merges.txt', Uint8Array>>}
   */
  save(options = {}) {
    return call(this, 'save', [undefined, checkOptions(options, ['dtype'])]);
  }

  /**
   * Terminates the worker, freeing all of the model's memory (a model loaded `into` another is
   * freed there, and the worker kept). Pending calls reject and running generations throw
   * Gpt2Error 'arg' ('the model has been disposed'). Safe to call twice.
   * @returns {Promise<void>}
   */
  async dispose() {
    const r = remotes.get(this);
    if (!this.guest) return r.conn.close(new Gpt2Error('the model has been disposed', 'arg'));
    if (r.disposed) return;
    r.disposed = true;
    if (!r.conn.closed) await call(this, 'dispose', []).catch(() => {});
  }
}

/**
 * A session living in the worker (made by RemoteModel.session()): the shape of Session (append,
 * fork, rewind, position, tokens, text, ... mirrored from it), with promises: getters return
 * promises too. `lastPosition` is the position reported by the latest answer, without a round
 * trip. Calls are answered in order; while a generation runs in the session, other calls
 * reject with Gpt2Error 'arg' (as in Node). Disposed with its model.
 */
export class RemoteSession extends Remote {
  /** @param {Connection} conn @param {number} handle @param {number} position */
  constructor(conn, handle, position) {
    super(conn, handle, 'session');
    /** @type {number} the session's length after the latest call that reported it */
    this.lastPosition = position;
  }

  /**
   * Generates from the end of the session, appending the generated tokens to it (see
   * Session.generate); streams like RemoteModel.generate.
   * @param {import('../index.js').GenerateOptions} [options]
   * @returns {RemoteGeneration}
   */
  generate(options = {}) {
    options = checkOptions(options, OPTION_NAMES.generate);
    return new RemoteGeneration(callMessage(this, 'generate', [streamOptions(options)]), options.signal, this);
  }

  /** Frees the session in the worker. Safe to call twice, and after the model's dispose. @returns {Promise<void>} */
  async dispose() {
    const r = remotes.get(this);
    if (r.disposed) return;
    r.disposed = true;
    if (!r.conn.closed) await call(this, 'dispose', []).catch(() => {});
  }
}

/** The summary of a generation cancelled before the worker reported one: what was taken, as Generation's. */
function cancelledSummary(tokens, text) {
  return {
    tokens, promptTokens: 0, truncatedTokens: 0, slides: 0, warnings: [], stopReason: 'cancelled', text,
    timings: { firstTokenMs: 0, totalMs: 0, tokensPerSecond: null },
  };
}

/**
 * One stream running in the worker: a generation (an async iterator of { text, token } and
 * `summary`, a promise of the in-thread summary) or, with `steps`, a fine-tuning (an iterator
 * of its steps, no summary). They differ in what an abort drops: a generation ends at once
 * (its summary rejects, the next next() throws AbortError); a fine-tuning yields the steps the
 * worker finished before it saw the abort, then throws, so the steps seen are those in the model.
 */
export class RemoteGeneration {
  /**
   * @param {{ conn: Connection, message: object }} call the 'call' message and its connection
   * @param {AbortSignal} [signal]
   * @param {Remote} target the model or session running it (told the worker's answers)
   * @param {boolean} [steps] a fine-tuning
   */
  constructor({ conn, message }, signal, target, steps = false) {
    this.#conn = conn;
    this.#request = message;
    this.#signal = signal;
    this.#target = target;
    this.#steps = steps;
    if (!steps) {
      /** @type {Promise<import('../index.js').GenerationSummary>} settles when the generation ends */
      this.summary = new Promise((resolve, reject) => { this.#settle = { resolve, reject }; });
      this.summary.catch(() => {}); // a rejected summary is also thrown by the iterator
    }
    if (signal) signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  #conn; #request; #signal; #target; #steps; #settle;
  #rid = undefined;   // request id once started
  #queue = [];        // items received, not yet taken
  #waiter = null;     // { resolve, reject } of a pending next()
  #end = null;        // { error } once no more items will come (error: thrown once the queue is empty)
  #cancelled = false; // return() was called before the end
  #text = '';         // text taken by the consumer (a generation)
  #tokens = 0;        // tokens taken by the consumer (a generation)
  #onAbort = () => {
    if (!this.#steps) this.#close(abortError(this.#signal), true, true);
    else if (this.#rid !== undefined) this.#conn.send({ op: 'abort', rid: this.#rid }); // it ends with AbortError
  };

  [Symbol.asyncIterator]() { return this; }

  /** @returns {Promise<IteratorResult<any>>} */
  async next() {
    if (this.#queue.length) return { done: false, value: this.#take() };
    if (this.#end) return this.#finish();
    if (this.#rid === undefined) {
      try {
        throwIfAborted(this.#signal);
        this.#rid = this.#conn.stream(this.#request, (m) => this.#onMessage(m), (e) => this.#onError(e));
      } catch (e) {
        this.#close(e, true);
        return this.#finish();
      }
    }
    return new Promise((resolve, reject) => { this.#waiter = { resolve, reject }; });
  }

  /** Stops early (called by `break` in for await): the worker stops (a fine-tuning at a step boundary). */
  async return() {
    if (this.#end) return { done: true, value: undefined };
    this.#queue = [];
    if (this.#steps || this.#rid === undefined) {
      if (this.#rid !== undefined) this.#conn.send({ op: 'abort', rid: this.#rid });
      this.#close(null, true, false, cancelledSummary(0, ''));
    } else {
      // The worker's summary comes with its 'done'; until then no piece is taken.
      this.#cancelled = true;
      this.#end = { error: null };
      this.#detach();
      this.#conn.send({ op: 'cancel', rid: this.#rid });
    }
    return { done: true, value: undefined };
  }

  #take() {
    const item = this.#queue.shift();
    if (!this.#steps) {
      this.#text += item.text;
      if (item.token !== null) this.#tokens++;
    }
    return item;
  }

  #onMessage(m) {
    if (m.type === 'piece') {
      if (!this.#end) this.#queue.push(m.piece);
    } else if (m.type === 'done') {
      noteState(this.#target, m);
      if (this.#cancelled) {
        // The worker may have made a token or two more than were taken: report what was taken.
        this.#conn.forget(this.#rid);
        this.#settle.resolve({ ...m.summary, stopReason: 'cancelled', tokens: this.#tokens, text: this.#text });
        return;
      }
      this.#close(null, false, false, m.summary);
    }
    this.#wake();
  }

  #onError(e) {
    if (this.#cancelled) {
      this.#settle.resolve(cancelledSummary(this.#tokens, this.#text));
      return;
    }
    // A fine-tuning stopped by the signal throws the signal's reason, after the steps it made.
    const aborted = this.#steps && e && e.name === 'AbortError' && this.#signal && this.#signal.aborted;
    this.#close(aborted ? abortError(this.#signal) : e, !this.#steps);
  }

  /**
   * The end: no more items come. With an error, summary rejects and next() throws it once the
   * queue is empty (drop: empty it now); else summary resolves with `summary`.
   */
  #close(error, drop, tellWorker = false, summary = undefined) {
    if (this.#end) return;
    this.#end = { error };
    if (drop) this.#queue = [];
    if (this.#rid !== undefined) {
      if (tellWorker) this.#conn.send({ op: 'abort', rid: this.#rid });
      this.#conn.forget(this.#rid);
    }
    this.#detach();
    if (this.#settle) {
      if (error) this.#settle.reject(error);
      else this.#settle.resolve(summary);
    }
    this.#wake();
  }

  /** The end, once the queue is empty: throws the error (once), then done. */
  #finish() {
    const { error } = this.#end;
    this.#end = { error: null };
    if (error) throw error;
    return { done: true, value: undefined };
  }

  /** Answers a pending next() once there is an item or the end. */
  #wake() {
    if (!this.#waiter || (!this.#queue.length && !this.#end)) return;
    const w = this.#waiter;
    this.#waiter = null;
    if (this.#queue.length) w.resolve({ done: false, value: this.#take() });
    else {
      try {
        w.resolve(this.#finish());
      } catch (e) {
        w.reject(e);
      }
    }
  }

  /** Stops listening to the signal. */
  #detach() {
    if (this.#signal) this.#signal.removeEventListener('abort', this.#onAbort);
  }
}
