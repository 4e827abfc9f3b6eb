// worker.js - the model in a Web Worker. Started by js/browser/index.js as a module worker:
//   new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })
// (that literal form lets bundlers find this file and bundle it, with its imports, as the
// worker's own entry). It holds loaded models by id and answers messages from the main thread.
//
// Requests (main -> worker), each with a request id `rid`:
//   { op: 'load', rid, source, memoryBudget, precision, cache, threads, into } -> progress*, result { id, config, info, eotId }
//                             (into: the id of a model here; the new one shares its instance, e.g. a draft)
//   { op: 'plan', rid, source, memoryBudget, precision } -> result LoadPlan (js/plan.js: what loading
//                             the URL folder would take, before downloading its weights)
//   { op: 'tokenize', rid, id, text, options }           -> result number[]
//   { op: 'detokenize', rid, id, ids }                   -> result string
//   { op: 'score', rid, id, text, options }              -> result ScoreResult
//   { op: 'rank', rid, id, prompt, choices, options }    -> result RankResult[]
//   { op: 'generate', rid, id, prompt, options }         -> piece*, done { summary }
//                             (options.draft: the id of a draft loaded with `into: id`)
//   { op: 'finetune', rid, id, data, options }           -> piece* (one FinetuneStep each), done
//   { op: 'save', rid, id, options }                     -> result { name: Uint8Array } (the four files)
//   Sessions (a Session object kept here under a session id `sid`; every answer carries the
//   session's `position` after the call):
//   { op: 'session', rid, id }                           -> result { sid, position }
//   { op: 'sessionAppend', rid, sid, input, options }    -> result { ids, position }
//   { op: 'sessionGenerate', rid, sid, options }         -> piece*, done { summary, position }
//   { op: 'sessionFork', rid, sid }                      -> result { sid, position }
//   { op: 'sessionRewind', rid, sid, position }          -> result { position }
//   { op: 'sessionState', rid, sid }                     -> result { position, tokens, text }
//   { op: 'sessionDispose', rid, sid }                   -> result null
//   { op: 'abort', rid }      aborts a running load, generation or fine-tuning (it then answers error AbortError)
//   { op: 'cancel', rid }     stops a generation or fine-tuning early (`break`): done (a generation's
//                             summary has stopReason 'cancelled'); fine-tuning stops at a step boundary
//   { op: 'dispose', rid, id }                           -> result null
//   { op: 'clearCache', rid }                            -> result number
// Replies (worker -> main): { rid, type: 'progress' | 'result' | 'piece' | 'done' | 'error', ... };
// errors travel as { name, message, code } (browser.js turns them back into Gpt2Error /
// DOMException 'AbortError').
//
// Model files from URLs are downloaded here (never through the main thread), through the
// browser cache (js/browser/cache.js) unless `cache: false`; files handed over as Blob/File arrive by
// structured clone (a reference to the same data, not a copy); a ReadableStream is transferred.
import { load } from '../load.js';
import { planLoad } from '../plan.js';
import { defaultModelFiles, FILE_NAMES } from '../sources.js';
import { clearModelCache, createCachedFetch } from './cache.js';

/** @type {Map<number, import('../model.js').Gpt2Model>} */
const models = new Map();
let nextModelId = 1;
/** Sessions by session id, with the id of their model. @type {Map<number, { session: import('../session.js').Session, modelId: number }>} */
const sessions = new Map();
let nextSessionId = 1;
/** Running loads and generations by request id, so 'abort' / 'cancel' can reach them. */
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

/** An error as plain data that survives postMessage. */
function serializeError(e) {
  if (e && typeof e === 'object') {
    return { name: String(e.name || 'Error'), message: String(e.message || e), code: e.code === undefined ? undefined : String(e.code) };
  }
  return { name: 'Error', message: String(e), code: undefined };
}

function model(id) {
  const m = models.get(id);
  if (!m) throw Object.assign(new Error('the model has been disposed'), { name: 'Gpt2Error', code: 'arg' });
  return m;
}

function session(sid) {
  const s = sessions.get(sid);
  if (!s || s.session.disposed) throw Object.assign(new Error('the session has been disposed'), { name: 'Gpt2Error', code: 'arg' });
  return s;
}

/** Keeps a new Session under a new id; returns its answer { sid, position }. */
function keepSession(s, modelId) {
  const sid = nextSessionId++;
  sessions.set(sid, { session: s, modelId });
  return { sid, position: s.position };
}

/**
 * Streams a generation (of a model or a session) as piece* then done { summary, ...extra() };
 * 'abort' and 'cancel' messages for rid reach it between tokens. A fine-tuning streams the same
 * way (a piece per step, reached between steps; it has no summary).
 */
async function streamGeneration(rid, makeGen, extra = () => ({})) {
  const controller = new AbortController();
  const gen = makeGen(controller.signal);
  let cancelled = false;
  running.set(rid, {
    abort: () => controller.abort(),
    cancel: () => { cancelled = true; },
  });
  try {
    // Each piece is posted as soon as it is made; between tokens the generator yields to
    // the event loop, so 'abort' and 'cancel' messages are handled promptly.
    for await (const piece of gen) {
      post({ rid, type: 'piece', piece });
      if (cancelled) break;
    }
    const summary = await gen.summary;
    post({ rid, type: 'done', summary, ...extra() });
  } finally {
    running.delete(rid);
  }
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
        ...(into === undefined ? {} : { into: model(into) }),
        fetch: cached ? cached.fetch : undefined,
        onProgress: (p) => progress.load(p),
      });
      const id = nextModelId++;
      models.set(id, m);
      // info.cache: how many of the files came from the cache, were downloaded into it, or
      // were fetched without it (null: caching off or not a URL source).
      const info = { ...m.info, cache: cached ? { ...cached.stats } : null };
      if (progress.noticeText) info.cacheNotice = progress.noticeText;
      post({ rid, type: 'result', value: { id, config: { ...m.config }, info, eotId: m.eotId } });
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

  tokenize({ rid, id, text, options }) {
    post({ rid, type: 'result', value: model(id).tokenize(text, options || {}) });
  },

  detokenize({ rid, id, ids }) {
    post({ rid, type: 'result', value: model(id).detokenize(ids) });
  },

  score({ rid, id, text, options }) {
    post({ rid, type: 'result', value: model(id).score(text, options || {}) });
  },

  rank({ rid, id, prompt, choices, options }) {
    post({ rid, type: 'result', value: model(id).rank(prompt, choices, options || {}) });
  },

  generate({ rid, id, prompt, options }) {
    const m = model(id);
    const opts = { ...(options || {}) };
    if (opts.draft !== undefined) opts.draft = model(opts.draft); // a draft id (browser.js) -> the model
    return streamGeneration(rid, (signal) => m.generate(prompt, { ...opts, signal }));
  },

  finetune({ rid, id, data, options }) {
    const m = model(id);
    return streamGeneration(rid, (signal) => m.finetune(data, { ...(options || {}), signal }));
  },

  async save({ rid, id, options }) {
    const files = await model(id).save(undefined, options || {});
    // model.safetensors and config.json are fresh copies: transfer them; the tokenizer files
    // are the model's own (kept for the next save): copy them.
    post({ rid, type: 'result', value: files }, [files['model.safetensors'].buffer, files['config.json'].buffer]);
  },

  session({ rid, id }) {
    post({ rid, type: 'result', value: keepSession(model(id).session(), id) });
  },

  sessionAppend({ rid, sid, input, options }) {
    const s = session(sid).session;
    const ids = s.append(input, options || {});
    post({ rid, type: 'result', value: { ids, position: s.position } });
  },

  sessionGenerate({ rid, sid, options }) {
    const s = session(sid).session;
    return streamGeneration(rid, (signal) => s.generate({ ...(options || {}), signal }),
      () => ({ position: s.disposed ? 0 : s.position }));
  },

  sessionFork({ rid, sid }) {
    const { session: s, modelId } = session(sid);
    post({ rid, type: 'result', value: keepSession(s.fork(), modelId) });
  },

  sessionRewind({ rid, sid, position }) {
    const s = session(sid).session;
    s.rewind(position);
    post({ rid, type: 'result', value: { position: s.position } });
  },

  sessionState({ rid, sid }) {
    const s = session(sid).session;
    post({ rid, type: 'result', value: { position: s.position, tokens: s.tokens, text: s.text } });
  },

  sessionDispose({ rid, sid }) {
    const s = sessions.get(sid);
    if (s) s.session.dispose();
    sessions.delete(sid);
    post({ rid, type: 'result', value: null });
  },

  abort({ rid }) {
    const r = running.get(rid);
    if (r) r.abort();
  },

  cancel({ rid }) {
    const r = running.get(rid);
    if (r && r.cancel) r.cancel();
  },

  dispose({ rid, id }) {
    const m = models.get(id);
    if (m) m.dispose();
    models.delete(id);
    for (const [other, g] of models) if (g.disposed) models.delete(other); // guests loaded into it (`into`)
    for (const [sid, s] of sessions) if (s.modelId === id || !models.has(s.modelId)) sessions.delete(sid);
    post({ rid, type: 'result', value: null });
  },

  async clearCache({ rid }) {
    post({ rid, type: 'result', value: await clearModelCache() });
  },
};

/** The load() source from what browser.js sent (a URL string, an object of files, or undefined). */
function toLoadSource(source) {
  if (source === undefined || typeof source === 'string') return source;
  const files = {};
  for (const name of FILE_NAMES) {
    const v = source[name];
    // A Response cannot be posted: browser.js sends its body stream and size instead.
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
