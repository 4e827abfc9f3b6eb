// connection.js - the page's side of the worker (js/browser/worker.js): starting it where
// its script is (bundled, beside the package's files, or on another origin), the requests and
// replies over it (js/browser/protocol.js), and a model source as posted to it.
import { Gpt2Error, httpStatus } from '../errors.js';
import { assetsFolder, FILE_NAMES } from '../sources.js';

/**
 * Starts the worker: [worker, its script's URL]. The default is written in the literal form
 * bundlers detect. A script on another origin (a CDN) cannot be a worker itself: a
 * same-origin blob: worker imports it (the script must then be served with CORS).
 * @param {string|URL|undefined} workerUrl @param {string|URL|undefined} assetsUrl
 * @returns {[Worker, URL]}
 */
export function startWorker(workerUrl, assetsUrl) {
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
  const fix = 'set the workerUrl or assetsUrl option of loadInWorker() to where gpt2-wasm\'s js/browser/worker.js is served';
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

/** Requests and replies over one worker; errors come back as Gpt2Error / AbortError. */
export class Connection {
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
   * @returns {Promise<any>} the 'result' message
   */
  request(msg, { transfer, onProgress, onStart } = {}) {
    return new Promise((resolve, reject) => {
      const rid = this.stream(msg, (m) => {
        if (m.type === 'progress') {
          if (onProgress) onProgress(m);
        } else if (m.type === 'result') {
          this.pending.delete(rid);
          resolve(m);
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
export function prepareSource(source) {
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
