// worker.js - the model in a Web Worker. Started by js/browser/index.js as a module worker:
//   new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })
// (that literal form lets bundlers find this file and bundle it, with its imports, as the
// worker's own entry). It keeps the models and sessions it made under handle ids and answers
// the messages described in js/browser/protocol.js: 'load' and 'plan', and 'call', which runs
// any method or getter of a kept Gpt2Model or Session (nothing here names them).
//
// Model files from URLs are downloaded here (never through the main thread), through the
// browser cache (js/browser/cache.js) unless `cache: false`; files handed over as Blob/File
// arrive by structured clone (a reference to the same data, not a copy); a ReadableStream is
// transferred.
import { Gpt2Error } from '../errors.js';
import { load } from '../load.js';
import { Gpt2Model } from '../model.js';
import { planLoad } from '../plan.js';
import { Session } from '../session.js';
import { defaultModelFiles, FILE_NAMES } from '../sources.js';
import { createCachedFetch } from './cache.js';
import { HANDLE, mapArg, serializeError, SIGNAL } from './protocol.js';

/** Models and sessions by handle id; `obj` is dropped once disposed. @type {Map<number, { obj: Gpt2Model|Session|null, kind: string }>} */
const handles = new Map();
let nextHandle = 1;
/** Running requests by request id, so 'abort' and 'cancel' can reach them. */
const running = new Map();

const post = (msg, transfer) => self.postMessage(msg, transfer || []);

self.onmessage = (event) => {
  const msg = event.data;
  const handler = handlers[msg && msg.op];
  if (!handler) {
    if (msg && msg.rid !== undefined) post({ rid: msg.rid, type: 'error', error: { name: 'Gpt2Error', message: `unknown request '${msg.op}'`, code: 'arg' } });
    return;
  }
  Promise.resolve()
    .then(() => handler(msg))
    .catch((e) => post({ rid: msg.rid, type: 'error', error: serializeError(e) }));
};

/** Keeps a model or session; returns its handle marker (with a session's position). */
function keep(obj) {
  const id = nextHandle++;
  handles.set(id, { obj, kind: obj instanceof Session ? 'session' : 'model' });
  return { [HANDLE]: id, kind: handles.get(id).kind, ...state(obj) };
}

/** The object of a handle id. @returns {Gpt2Model|Session} */
function held(id) {
  const h = handles.get(id);
  if (!h || !h.obj) throw new Gpt2Error(`the ${h ? h.kind : 'model'} has been disposed`, 'arg');
  return h.obj;
}

/** What every answer about a target reports: a session's position. */
function state(obj) {
  return obj instanceof Session && !obj.disposed ? { position: obj.position } : {};
}

/**
 * The methods and getters of the classes kept here, by kind ('call' or 'get'): what 'call' may
 * run, and what the page mirrors (sent with each load).
 */
const API = Object.fromEntries([['model', Gpt2Model], ['session', Session]].map(([kind, cls]) => [kind, Object.fromEntries(
  Object.entries(Object.getOwnPropertyDescriptors(cls.prototype))
    .filter(([name, d]) => name !== 'constructor' && (typeof d.value === 'function' || d.get))
    .map(([name, d]) => [name, d.get ? 'get' : 'call']),
)]));

/** The buffers of a result to transfer: those of its typed arrays that `owner` does not keep. */
function transferable(value, owner) {
  const buffers = (v, set, depth) => {
    if (ArrayBuffer.isView(v)) { if (v.buffer instanceof ArrayBuffer) set.add(v.buffer); }
    else if (depth > 0 && v && typeof v === 'object') for (const x of Object.values(v)) buffers(x, set, depth - 1);
    return set;
  };
  const kept = buffers(owner, new Set(), 2);
  return [...buffers(value, new Set(), 1)].filter((b) => !kept.has(b));
}

/** Streams an async iterator as piece*, then done { summary }; 'cancel' stops it after a piece. */
async function stream(rid, iterator, target) {
  let cancelled = false;
  running.get(rid).cancel = () => { cancelled = true; };
  // Each piece is posted as soon as it is made; between items the iterator yields to the
  // event loop, so 'abort' and 'cancel' messages are handled promptly.
  for await (const piece of iterator) {
    post({ rid, type: 'piece', piece });
    if (cancelled) break;
  }
  post({ rid, type: 'done', summary: await iterator.summary, ...state(target) });
}

const handlers = {
  async load({ rid, source, memoryBudget, precision, cache = true, threads, into }) {
    const controller = new AbortController();
    running.set(rid, { abort: () => controller.abort() });
    if (source === null) source = undefined; // the embedded model (its files next to this module, or as bundled)
    const progress = new ProgressMerger((event) => post({ rid, type: 'progress', event }));
    let cached = null;
    const useCache = cache && (source === undefined || typeof source === 'string');
    if (useCache) {
      // The embedded model's files may have been renamed by a bundler: know them by URL.
      const names = new Map(source === undefined ? Object.entries(defaultModelFiles()).map(([name, url]) => [url.href, name]) : []);
      const fileOf = (url) => names.get(url) ?? fileName(url);
      cached = createCachedFetch({
        onBytes: (url, n) => progress.network(fileOf(url), n),
        onSize: (url, size) => progress.size(fileOf(url), size),
        onNotice: (text) => progress.notice(text),
      });
    }
    try {
      const m = await load(toLoadSource(source), {
        signal: controller.signal,
        memoryBudget,
        precision,
        threads: threads ?? 'auto',
        ...(into === undefined ? {} : { into: held(into) }),
        fetch: cached ? cached.fetch : undefined,
        onProgress: (p) => progress.load(p),
      });
      // info.cache: how many of the files came from the cache, were downloaded into it, or
      // were fetched without it (null: caching off or not a URL source).
      const info = { ...m.info, cache: cached ? { ...cached.stats } : null };
      if (progress.noticeText) info.cacheNotice = progress.noticeText;
      post({ rid, type: 'result', value: { ...keep(m), config: { ...m.config }, info, eotId: m.eotId, api: API } });
    } catch (e) {
      // Files that arrived whole but do not load (a bad or mismatched checkpoint) must not be
      // served from the cache again: evict them, so that a fixed server copy is fetched next time.
      if (cached && e && ['format', 'shape', 'unsupported'].includes(e.code)) await cached.forget();
      throw e;
    } finally {
      running.delete(rid);
    }
  },

  async plan({ rid, source, memoryBudget, precision }) {
    const controller = new AbortController();
    running.set(rid, { abort: () => controller.abort() });
    try {
      post({ rid, type: 'result', value: await planLoad(source, { memoryBudget, precision, signal: controller.signal }) });
    } finally {
      running.delete(rid);
    }
  },

  async call({ rid, target, method, args = [] }) {
    const obj = held(target);
    const kind = handles.get(target).kind;
    const how = typeof method === 'string' && Object.hasOwn(API[kind], method) ? API[kind][method] : undefined;
    if (!how) throw new Gpt2Error(`a ${kind} has no method '${String(method)}'`, 'arg');
    const controller = new AbortController();
    running.set(rid, { abort: () => controller.abort() });
    const unwire = (v) => {
      if (!v || typeof v !== 'object') return v;
      if (v[SIGNAL] === true) return controller.signal;
      return Object.hasOwn(v, HANDLE) ? held(v[HANDLE]) : v;
    };
    try {
      const value = how === 'get' ? obj[method] : obj[method](...args.map((a) => mapArg(a, unwire)));
      if (value && typeof value[Symbol.asyncIterator] === 'function') {
        await stream(rid, value, obj);
      } else {
        let v = await value;
        if (v instanceof Gpt2Model || v instanceof Session) v = keep(v);
        const msg = { rid, type: 'result', value: v, ...state(obj) };
        try {
          post(msg, transferable(v, obj));
        } catch {
          post(msg); // a buffer that cannot be transferred (never expected): copy it
        }
      }
    } finally {
      running.delete(rid);
      for (const h of handles.values()) if (h.obj && h.obj.disposed) h.obj = null; // with a model go its sessions and guests
    }
  },

  abort({ rid }) {
    const r = running.get(rid);
    if (r) r.abort();
  },

  cancel({ rid }) {
    const r = running.get(rid);
    if (r && r.cancel) r.cancel();
  },
};

/** The load() source from what js/browser/index.js sent (a URL string, an object of files, or undefined). */
function toLoadSource(source) {
  if (source === undefined || typeof source === 'string') return source;
  const files = {};
  for (const name of FILE_NAMES) {
    const v = source[name];
    // A Response cannot be posted: the page sends its body stream and size instead.
    if (v && typeof v === 'object' && v.kind === 'response-body') {
      const headers = v.size === undefined ? {} : { 'Content-Length': String(v.size) };
      files[name] = new Response(v.body, { headers });
    } else {
      files[name] = v;
    }
  }
  return files;
}

/** The checkpoint file a URL names ('.../model.safetensors' -> 'model.safetensors'). */
function fileName(url) {
  const last = new URL(url).pathname.split('/').pop();
  return FILE_NAMES.includes(last) ? last : last || url;
}

/**
 * One progress stream from two sources: bytes downloaded into the cache (js/browser/cache.js) and
 * bytes read by load() (from the cache or the network). Each file counts once, as the larger
 * of the two, so a download into the cache followed by the read from it goes 0 -> 100% once,
 * and a load from the cache goes 0 -> 100% as load() reads it. Events keep load()'s shape
 * { phase, file, loaded, total }, plus `notice` once the cache reported one.
 */
class ProgressMerger {
  constructor(emit) {
    this.emit = emit;
    this.net = Object.create(null);
    this.read = Object.create(null);
    this.sizes = Object.create(null);
    this.loadTotal = undefined;
    this.lastLoaded = 0; // load()'s cumulative count at its previous event
    this.noticeText = undefined;
    this.sent = -1;
  }

  size(file, size) { this.sizes[file] = size; }

  notice(text) {
    if (this.noticeText === undefined) this.noticeText = text;
  }

  network(file, n) {
    this.net[file] = n;
    this.#send('download', file);
  }

  load(p) {
    if (p.phase === 'ready') {
      const loaded = this.#loaded();
      const event = { phase: 'ready', file: null, loaded: Math.max(loaded, p.loaded), total: p.total };
      if (this.noticeText) event.notice = this.noticeText;
      this.emit(event);
      return;
    }
    this.loadTotal = p.total;
    this.read[p.file] = (this.read[p.file] || 0) + (p.loaded - this.lastLoaded);
    this.lastLoaded = p.loaded;
    this.#send('download', p.file);
  }

  #loaded() {
    let sum = 0;
    for (const f of FILE_NAMES) sum += Math.max(this.net[f] || 0, this.read[f] || 0);
    return sum;
  }

  #send(phase, file) {
    const loaded = this.#loaded();
    if (loaded === this.sent) return; // nothing new (reading what was already counted)
    this.sent = loaded;
    let total = this.loadTotal;
    if (total === undefined && FILE_NAMES.every((f) => this.sizes[f] !== undefined)) {
      total = FILE_NAMES.reduce((a, f) => a + this.sizes[f], 0);
    }
    const event = { phase, file, loaded, total };
    if (this.noticeText) event.notice = this.noticeText;
    this.emit(event);
  }
}
