// sw.js - the service worker of the demo page (web/): keeps the page, its scripts, both
// WebAssembly builds (with the threaded build's worker script) and the embedded model, so that
// the page opens, loads the embedded model and generates with no network.
//
// It lives at the root of the served folder because its scope must cover web/, js/, dist/ and
// models/: the model's Web Worker (js/browser/worker.js) and the threads' workers (dist/) are
// controlled by the service worker whose scope holds their own URLs, not the page's.
//
// Versioning: web/offline.js registers sw.js?v=VERSION, VERSION being the version of
// dist/precache.json (scripts/precache.mjs: a hash of every listed file's SHA-256). A change
// to any file gives a new version and so a new service worker, which precaches into its own
// cache (gpt2-wasm-app-VERSION), copying unchanged files (same SHA-256) from the old cache
// instead of downloading them again. It waits until the page asks it to take over (the
// "new version available: reload" notice); when it activates, it deletes the older caches.
// Model files downloaded from Hugging Face are kept by the worker in its own cache
// (gpt2-wasm-models-v1, js/browser/cache.js), which this worker never touches.
//
// Serving: cache-first for the precached files (a navigation to web/ gets web/index.html, one
// to the root is redirected to web/); everything else goes to the network untouched (requests to other origins
// are not even seen through: only the model source the user picks is ever contacted).
// Responses from the cache carry the cross-origin isolation headers (COOP same-origin, COEP
// require-corp, CORP same-origin): those the server sent are stored with them, and on a
// static host that sends none they are added here, so the page is cross-origin isolated
// (SharedArrayBuffer, the threaded build) from the second visit on.

const VERSION = new URL(self.location.href).searchParams.get('v') || 'unversioned';
const PREFIX = 'gpt2-wasm-app-';
const CACHE = PREFIX + VERSION;
const SCOPE = new URL('./', self.location.href);
const MANIFEST_URL = new URL('dist/precache.json', SCOPE).href;
const INDEX_URL = new URL('web/index.html', SCOPE).href;
const SHA_HEADER = 'X-Gpt2-Wasm-Sha256';
const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

self.addEventListener('install', (event) => {
  event.waitUntil(precache());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
    }
  })());
});

self.addEventListener('message', (event) => {
  const type = event.data && event.data.type;
  if (type === 'skipWaiting') self.skipWaiting();
  else if (type === 'probe' && event.ports[0]) event.waitUntil(probe(event.data.url, event.ports[0]));
});

/**
 * Whether a model source's host answers at all (for the page's error message: unreachable, or
 * reachable but without CORS headers). An opaque no-cors request to the model source the
 * user picked, nowhere else; it needs this script to be served without COEP require-corp
 * (scripts/serve.mjs does so), else the answer is blocked like an unreachable host.
 */
async function probe(url, port) {
  let reachable = false;
  try {
    const u = new URL(url);
    if (u.protocol === 'http:' || u.protocol === 'https:') {
      await fetch(new URL('config.json', u), { mode: 'no-cors', cache: 'no-store', credentials: 'omit', redirect: 'follow' });
      reachable = true;
    }
  } catch { /* unreachable */ }
  port.postMessage({ reachable });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== SCOPE.origin || url.href === MANIFEST_URL) return; // the network decides
  let key = url.origin + url.pathname;
  if (request.mode === 'navigate' && key === SCOPE.href) {
    event.respondWith(Response.redirect(new URL('web/', SCOPE).href, 302)); // as the server does
    return;
  }
  if (request.mode === 'navigate' && key === new URL('web/', SCOPE).href) key = INDEX_URL;
  if (url.search) return; // the precached files are requested without a query
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(key);
    if (hit) return isolated(hit);
    return fetch(request);
  })());
});

/** SHA-256 of bytes, as hex. */
async function sha256(buffer) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A cached copy of url with this SHA-256 in an older cache of ours, or null. */
async function fromOlderCache(url, hash) {
  for (const name of await caches.keys()) {
    if (!name.startsWith(PREFIX) || name === CACHE) continue;
    const r = await (await caches.open(name)).match(url);
    if (r && r.headers.get(SHA_HEADER) === hash) return r;
  }
  return null;
}

/** Downloads (or copies) every file of the manifest into CACHE, checking each SHA-256. */
async function precache() {
  const r = await fetch(MANIFEST_URL, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${MANIFEST_URL}: HTTP ${r.status}`);
  const manifest = await r.json();
  if (manifest.version !== VERSION) {
    // The files changed again since the page looked: the page registers the newer version.
    throw new Error(`the files changed during the update (version ${manifest.version}, expected ${VERSION})`);
  }
  const cache = await caches.open(CACHE);
  for (const file of manifest.files) {
    const url = new URL(file.path, SCOPE).href;
    const old = await fromOlderCache(url, file.sha256);
    if (old) {
      await cache.put(url, old);
      continue;
    }
    const res = await fetch(url, { cache: 'no-cache' });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    const body = await res.arrayBuffer();
    const hash = await sha256(body);
    if (hash !== file.sha256) throw new Error(`${url} changed during the update (SHA-256 ${hash}, expected ${file.sha256})`);
    const headers = new Headers(res.headers);
    headers.set(SHA_HEADER, hash);
    await cache.put(url, new Response(body, { status: 200, statusText: 'OK', headers }));
  }
}

/** A cached response with the cross-origin isolation headers (added when missing). */
function isolated(response) {
  if (Object.keys(ISOLATION).every((h) => response.headers.has(h))) return response;
  const headers = new Headers(response.headers);
  for (const [k, v] of Object.entries(ISOLATION)) if (!headers.has(k)) headers.set(k, v);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
