// cache.js - keeps downloaded model files in the browser's Cache API, so a model is
// downloaded once. Used by the worker (js/browser/worker.js) through load()'s `fetch` option:
//
//   const cache = createCachedFetch({ onBytes, onNotice });
//   const model = await load(url, { fetch: cache.fetch, ... });
//
// Design (why not tee()): a new download is written into the cache FIRST, with
// `cache.put(url, new Response(networkBody.pipeThrough(counter)))`, where `counter` is a
// TransformStream that counts the bytes for progress and checks the count against the
// Content-Length. Only when put() has stored the whole file is the load served from
// `cache.match(url)`, whose body is read from disk. Nothing holds the file in memory: the
// network body flows straight into the cache's disk writer at the writer's pace, and load()
// later reads a disk-backed body at its own pace. (Teeing the network body into put() and
// load() at once would buffer in memory whatever one branch has read and the other not yet.)
// The price: converting the weights starts after the download, not during it; converting
// is much faster than downloading, so the difference is small.
//
// Entries are complete by construction (put() commits only a fully written body), and they
// are also checked on use: every entry stores its byte count in the X-Gpt2-Wasm-Size header
// at write time; an entry whose body size differs (or that has no such header) is deleted
// and the file is downloaded again. Each file also has a checksum of its bytes, computed
// while downloading and stored as a tiny entry of its own (the file's URL with the query
// parameter gpt2-wasm-checksum), so the big entry is written once; a cached body is checked
// against it
// while load() reads it, and a mismatch (a corrupted disk copy) deletes the entry and fails
// that load with an error saying so: the next load downloads the file again.
//
// A full disk (QuotaExceededError from put(), or too little room by navigator.storage
// .estimate() before starting) falls back to a plain network fetch of that file; onNotice
// then receives a sentence for the user, and the load still succeeds.
import { FILE_NAMES } from '../sources.js';

/** The name of the Cache API cache holding model files. */
export const CACHE_NAME = 'gpt2-wasm-models-v1';

/** The header holding an entry's byte count, written with the entry. */
const SIZE_HEADER = 'X-Gpt2-Wasm-Size';

/** The key of the small entry holding the checksum (see checksum()) of url's entry. */
const checksumKey = (url) => `${url}${url.includes('?') ? '&' : '?'}gpt2-wasm-checksum`;

/**
 * A running 64-bit checksum (two 32-bit FNV-1a lanes over alternating bytes, with their
 * byte counts folded in at the end). It detects corruption of a stored copy; it is not a
 * cryptographic hash. update() takes chunks of any size.
 */
export function checksum() {
  let a = 0x811c9dc5, b = 0x01000193 ^ 0x5bd1e995, n = 0;
  return {
    update(bytes) {
      let i = 0;
      if (n & 1 && bytes.length) { b = Math.imul(b ^ bytes[0], 16777619); i = 1; }
      const len = bytes.length;
      for (; i + 1 < len; i += 2) {
        a = Math.imul(a ^ bytes[i], 16777619);
        b = Math.imul(b ^ bytes[i + 1], 16777619);
      }
      if (i < len) a = Math.imul(a ^ bytes[i], 16777619);
      n += len;
    },
    digest() {
      const hex = (x) => (x >>> 0).toString(16).padStart(8, '0');
      return `${hex(Math.imul(a ^ n, 2654435761))}${hex(Math.imul(b ^ Math.floor(n / 2 ** 32), 2246822519))}`;
    },
  };
}

/** Whether the Cache API is usable here (it is missing in insecure contexts, e.g. plain http on a LAN address). */
export function cacheAvailable() {
  return typeof caches === 'object' && caches !== null && typeof caches.open === 'function';
}

/**
 * Removes every cached model file.
 * @returns {Promise<number>} how many entries were removed (0 when the Cache API is not available)
 */
export async function clearModelCache() {
  if (!cacheAvailable()) return 0;
  if (!(await caches.has(CACHE_NAME))) return 0;
  const cache = await caches.open(CACHE_NAME);
  const n = (await cache.keys()).filter((r) => !r.url.endsWith('gpt2-wasm-checksum')).length;
  await caches.delete(CACHE_NAME);
  return n;
}

/**
 * @typedef {object} CacheEvents
 * @property {(url: string, loaded: number, size: number|undefined) => void} [onBytes]
 *   network bytes of url written so far (cumulative for that file), and its size when known
 * @property {(url: string, size: number) => void} [onSize] size of url, as soon as it is known
 * @property {(notice: string) => void} [onNotice] a sentence for the user (cache not used, and why)
 * @property {typeof fetch} [fetch] the network fetch (default globalThis.fetch)
 */

/**
 * A fetch-compatible function for load()'s `fetch` option that serves model files from the
 * cache, downloading (into the cache) the ones that are not there.
 * @param {CacheEvents} [events]
 * @returns {{ fetch: typeof fetch, stats: { hits: number, stored: number, uncached: number }, forget: () => Promise<void> }}
 *   fetch; counts of files served from the cache, downloaded into it, and fetched without it;
 *   forget() evicts the files this fetch served or stored
 */
export function createCachedFetch(events = {}) {
  const net = events.fetch || globalThis.fetch.bind(globalThis);
  const stats = { hits: 0, stored: 0, uncached: 0 };
  const touched = new Set(); // URLs served from or stored in the cache
  const notice = (text) => { if (events.onNotice) events.onNotice(text); };
  // When one file fails (e.g. HTTP 404), the downloads of the others into the cache stop:
  // load() fails anyway, and a big file should not be downloaded for nothing.
  const group = new AbortController();
  let groupFailure = '';
  const failGroup = (why) => {
    if (!groupFailure) groupFailure = why;
    group.abort();
  };
  let cachePromise = null;
  const openCache = () => (cachePromise ??= caches.open(CACHE_NAME));

  /** A plain network fetch, counted for progress while load() reads it. */
  const uncached = async (url, init) => {
    stats.uncached++;
    return net(url, init);
  };

  async function cachedFetch(input, init = {}) {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = (init.method || (typeof input === 'object' && input.method) || 'GET').toUpperCase();
    if (!cacheAvailable() || method !== 'GET' || !/^https?:/.test(url)) return uncached(url, init);
    let cache;
    try {
      cache = await openCache();
    } catch (e) {
      notice(`The browser cache is not available (${e.message}); model files are not kept.`);
      return uncached(url, init);
    }

    // 1. A complete cached copy?
    const hit = await cache.match(url, { ignoreVary: true, ignoreSearch: false });
    if (hit) {
      const body = await hit.blob(); // disk-backed in Chromium: no read of the bytes here
      const stored = Number(hit.headers.get(SIZE_HEADER));
      if (hit.headers.has(SIZE_HEADER) && body.size === stored) {
        stats.hits++;
        touched.add(url);
        if (events.onSize) events.onSize(url, body.size);
        const sumEntry = await cache.match(checksumKey(url));
        const sum = sumEntry ? await sumEntry.text() : null;
        return servedResponse(body, hit, sum, () => evict(cache, url), url);
      }
      await evict(cache, url); // partial or corrupted: download again
    }

    // 2. Download into the cache, then serve from it.
    const stop = new AbortController();
    const onStop = () => stop.abort();
    if (init.signal) {
      if (init.signal.aborted) stop.abort();
      init.signal.addEventListener('abort', onStop, { once: true });
    }
    if (group.signal.aborted) stop.abort();
    group.signal.addEventListener('abort', onStop, { once: true });
    // (The listeners stay: a response served straight from the network keeps following them.)
    try {
      return await download(cache, url, init, stop.signal);
    } catch (e) {
      if (init.signal && init.signal.aborted) throw abortReason(init.signal);
      if (group.signal.aborted && groupFailure) throw new Error(`stopped because ${groupFailure}`);
      failGroup(`${shortName(url)} failed (${e.message})`);
      throw e;
    }
  }

  async function download(cache, url, init, signal) {
    const r = await net(url, { ...init, signal, cache: 'no-store' }); // our cache is the cache
    if (!r.ok || !r.body) {
      failGroup(`${shortName(url)} failed (HTTP ${r.status})`);
      return r; // load() reports the HTTP error
    }
    const size = declaredSize(r);
    if (size !== undefined && events.onSize) events.onSize(url, size);
    if (size !== undefined && (await tooLittleRoom(size))) {
      notice(`Not enough free browser storage to keep ${shortName(url)} (${mb(size)}); it is used without caching and will be downloaded again next time.`);
      stats.uncached++;
      return r;
    }
    const counter = countingStream(size, (n) => { if (events.onBytes) events.onBytes(url, n, size); });
    const headers = new Headers({ 'Content-Type': r.headers.get('content-type') || 'application/octet-stream' });
    if (size !== undefined) headers.set(SIZE_HEADER, String(size));
    for (const h of ['etag', 'last-modified']) if (r.headers.get(h)) headers.set(h, r.headers.get(h));
    try {
      await cache.put(url, new Response(r.body.pipeThrough(counter.stream), { headers }));
      if (size === undefined) {
        // The size was not known in advance (e.g. a compressed body): record the count now.
        const entry = await cache.match(url, { ignoreVary: true });
        const blob = await entry.blob();
        if (blob.size !== counter.count()) throw new Error(`cached ${blob.size} bytes of ${counter.count()}`);
        headers.set(SIZE_HEADER, String(blob.size));
        await cache.put(url, new Response(blob, { headers }));
      }
      await cache.put(checksumKey(url), new Response(counter.digest()));
    } catch (e) {
      await evict(cache, url).catch(() => {});
      if (signal.aborted) throw e; // the caller turns this into the right error
      if (isQuotaError(e)) {
        notice(`The browser's storage is full: ${shortName(url)} is used without caching and will be downloaded again next time.`);
        return uncached(url, init);
      }
      throw e; // a network failure while downloading: load() reports it
    }
    const stored = await cache.match(url, { ignoreVary: true });
    if (!stored) {
      // Evicted at once (storage pressure): run from the network.
      notice(`The browser did not keep ${shortName(url)}; it is used without caching.`);
      return uncached(url, init);
    }
    stats.stored++;
    touched.add(url);
    return servedResponse(await stored.blob(), stored, counter.digest(), () => evict(cache, url), url);
  }

  /**
   * Removes from the cache every file this fetch served from it or stored in it: for a load
   * that failed on the files' contents (a bad checkpoint must not be served again).
   */
  async function forget() {
    if (!cacheAvailable() || !touched.size) return;
    const cache = await openCache();
    await Promise.all([...touched].map((url) => evict(cache, url).catch(() => {})));
  }

  return { fetch: cachedFetch, stats, forget };
}

/** The body size given by Content-Length, when the body is not content-encoded. */
function declaredSize(r) {
  const len = r.headers.get('content-length');
  const enc = r.headers.get('content-encoding');
  if (len === null || (enc && enc !== 'identity')) return undefined;
  const n = Number(len);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** Deletes url's entry and its checksum. */
async function evict(cache, url) {
  await cache.delete(url, { ignoreVary: true });
  await cache.delete(checksumKey(url));
}

/**
 * A Response for load() over a cached body, with its exact Content-Length. When the
 * expected checksum is known, the body is checked while it is read; on a mismatch onBad()
 * runs and the body fails with an error naming the file.
 */
function servedResponse(blob, entry, expected, onBad, url) {
  let body = blob;
  if (expected) {
    const sum = checksum();
    body = blob.stream().pipeThrough(new TransformStream({
      transform(chunk, controller) {
        sum.update(chunk);
        controller.enqueue(chunk);
      },
      async flush() {
        if (sum.digest() === expected) return;
        await Promise.resolve(onBad()).catch(() => {});
        throw new Error(`the cached copy of ${shortName(url)} is corrupted (checksum mismatch); ` +
          'it has been removed from the cache: load again to download it');
      },
    }));
  }
  return new Response(body, {
    status: 200,
    headers: {
      'Content-Type': entry.headers.get('content-type') || 'application/octet-stream',
      'Content-Length': String(blob.size),
      [SIZE_HEADER]: String(blob.size),
    },
  });
}

/**
 * A TransformStream that passes chunks through, reporting the running byte count and keeping
 * a checksum of the bytes, and fails
 * at the end when the count differs from the expected size (a truncated download must not be
 * cached).
 */
function countingStream(expected, onCount) {
  let n = 0;
  const sum = checksum();
  const stream = new TransformStream({
    transform(chunk, controller) {
      n += chunk.byteLength;
      sum.update(chunk);
      if (expected !== undefined && n > expected) throw new Error(`received more than the ${expected} bytes announced`);
      controller.enqueue(chunk);
      onCount(n);
    },
    flush() {
      if (expected !== undefined && n !== expected) throw new Error(`download ended after ${n} of ${expected} bytes`);
    },
  });
  return { stream, count: () => n, digest: () => sum.digest() };
}

async function tooLittleRoom(size) {
  try {
    if (!navigator.storage || typeof navigator.storage.estimate !== 'function') return false;
    const { quota, usage } = await navigator.storage.estimate();
    if (!Number.isFinite(quota) || !Number.isFinite(usage)) return false;
    return quota - usage < size;
  } catch {
    return false;
  }
}

function isQuotaError(e) {
  return !!e && (e.name === 'QuotaExceededError' || e.code === 22 || /quota/i.test(String(e.message)));
}

function abortReason(signal) {
  if (signal.reason instanceof Error) return signal.reason;
  return new DOMException('The operation was aborted.', 'AbortError');
}

function shortName(url) {
  try {
    return new URL(url).pathname.split('/').pop() || url;
  } catch {
    return url;
  }
}

function mb(n) {
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
}

// ---------------------------------------------------------------------------------------------
// Models taught in this browser (the page's Teach tab): kept in a Cache API cache of their own
// (KEPT_CACHE_NAME, so clearing the downloaded files keeps them), each as its four files under
// `<page folder>/gpt2-wasm-taught/<id>/<file>`, plus an index entry listing
// { id, name, date (ISO 8601), bytes, training? } (training: the loss curve it was taught with,
// { steps, losses: [{ step, loss, valLoss? }] }). A model is added to the index only after its
// four files are stored; a failed keep removes what it wrote.

/** The Cache API cache holding taught models. */
export const KEPT_CACHE_NAME = 'gpt2-wasm-taught-v1';
const KEPT_FILES = FILE_NAMES; // a checkpoint's four files
const keptUrl = (path) => new URL(`gpt2-wasm-taught/${path}`, globalThis.location?.href ?? 'http://localhost/').href;

async function keptIndex(cache) {
  const r = await cache.match(keptUrl('index.json'));
  if (!r) return [];
  try {
    const list = await r.json();
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

const putIndex = (cache, list) => cache.put(keptUrl('index.json'),
  new Response(JSON.stringify(list), { headers: { 'Content-Type': 'application/json' } }));

/**
 * @typedef {{ step: number, loss: number, valLoss?: number }} KeptLoss
 * @typedef {{ steps: number, losses: KeptLoss[] }} KeptTraining
 * @typedef {{ id: string, name: string, date: string, bytes: number, training?: KeptTraining }} KeptModel
 */

/** At most this many points of a loss curve are kept (the Teach tab's steps stop at 2000). */
const KEPT_LOSSES_MAX = 10000;

/** A loss curve as it is kept: finite numbers only, in step order; undefined when there is none. */
function keptTraining(training) {
  if (!training || !Array.isArray(training.losses)) return undefined;
  const losses = [];
  for (const p of training.losses.slice(0, KEPT_LOSSES_MAX)) {
    if (!p || !Number.isInteger(p.step) || !Number.isFinite(p.loss)) continue;
    losses.push(Number.isFinite(p.valLoss) ? { step: p.step, loss: p.loss, valLoss: p.valLoss } : { step: p.step, loss: p.loss });
  }
  const last = losses.length ? losses[losses.length - 1].step : 0;
  const steps = Number.isInteger(training.steps) && training.steps >= last ? training.steps : last;
  return losses.length ? { steps, losses } : undefined;
}

/**
 * The models kept in this browser, newest first ([] without the Cache API).
 * @returns {Promise<KeptModel[]>}
 */
export async function listKeptModels() {
  if (!cacheAvailable() || !(await caches.has(KEPT_CACHE_NAME))) return [];
  return keptIndex(await caches.open(KEPT_CACHE_NAME));
}

/**
 * Keeps a model's four files (e.g. RemoteModel.save()'s) under a name; returns its index entry.
 * Throws an Error in words when the Cache API is missing or storage is full (nothing is kept).
 * @param {Record<string, Uint8Array | Blob>} files config.json, model.safetensors, vocab.json, merges.txt
 * @param {string} name shown in the model picker
 * @param {KeptTraining} [training] the loss curve it was taught with (shown again when it is loaded)
 * @returns {Promise<KeptModel>}
 */
export async function keepModel(files, name, training) {
  if (!cacheAvailable()) throw new Error('This browser offers no storage here (the Cache API needs https or localhost).');
  const missing = KEPT_FILES.filter((f) => !files[f]);
  if (missing.length) throw new Error(`keepModel: missing ${missing.join(', ')}`);
  const bytes = KEPT_FILES.reduce((n, f) => n + (files[f].byteLength ?? files[f].size), 0);
  if (await tooLittleRoom(bytes)) throw new Error(`Not enough storage left in this browser for ${mb(bytes)}: delete a kept model first.`);
  const cache = await caches.open(KEPT_CACHE_NAME);
  const id = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  try {
    for (const f of KEPT_FILES) await cache.put(keptUrl(`${id}/${f}`), new Response(files[f]));
    const entry = { id, name: String(name).trim() || 'taught model', date: new Date().toISOString(), bytes };
    const curve = keptTraining(training);
    if (curve) entry.training = curve;
    await putIndex(cache, [entry, ...(await keptIndex(cache))]);
    return entry;
  } catch (e) {
    for (const f of KEPT_FILES) await cache.delete(keptUrl(`${id}/${f}`)).catch(() => {});
    throw isQuotaError(e) ? new Error(`Not enough storage left in this browser for ${mb(bytes)}: delete a kept model first.`) : e;
  }
}

/**
 * A kept model's four files as Blobs (read from disk as load() needs them): load()'s source.
 * @param {string} id
 */
export async function keptModelFiles(id) {
  const cache = cacheAvailable() ? await caches.open(KEPT_CACHE_NAME) : null;
  const entry = cache && (await keptIndex(cache)).find((m) => m.id === id);
  if (!entry) throw new Error('This taught model is no longer kept in this browser.');
  const files = {};
  for (const f of KEPT_FILES) {
    const r = await cache.match(keptUrl(`${id}/${f}`));
    if (!r) throw new Error(`The kept model "${entry.name}" lost its ${f} (the browser may have cleared storage): delete it.`);
    files[f] = await r.blob();
  }
  return files;
}

/** Deletes a kept model (its files and its index entry); false when there was none. */
export async function deleteKeptModel(id) {
  if (!cacheAvailable() || !(await caches.has(KEPT_CACHE_NAME))) return false;
  const cache = await caches.open(KEPT_CACHE_NAME);
  const list = await keptIndex(cache);
  if (!list.some((m) => m.id === id)) return false;
  await putIndex(cache, list.filter((m) => m.id !== id));
  for (const f of KEPT_FILES) await cache.delete(keptUrl(`${id}/${f}`));
  return true;
}
