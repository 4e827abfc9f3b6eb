// offline.js - the page's offline side: registers the service worker (../sw.js) at the version
// of the files being served, tells the user when a new version is ready ("reload"), and says
// when the network is gone and what still works.
//
// Elements: #net-status (the offline banner), #update-notice with #update-reload, #offline-status
// (one line in the footer: whether the page is kept for offline use).
// Test hook: startOffline(hook) keeps hook.offline = { state, version, error } up to date;
// state: 'unsupported' | 'checking' | 'installing' | 'ready' | 'update' | 'failed'.
//
// How the version is found: dist/precache.json (scripts/precache.mjs, computed by the server
// on each request under `npm start`) names every file with its SHA-256 and a version derived
// from them. The page registers ../sw.js?v=VERSION; a registration whose script URL differs is
// a new service worker, installed next to the running one. Offline, the manifest cannot be
// fetched and the running version stays.

const SCOPE = new URL('../', import.meta.url);
const SW_URL = new URL('../sw.js', import.meta.url);
const MANIFEST_URL = new URL('../dist/precache.json', import.meta.url);

const $ = (id) => document.getElementById(id);

/** The version a service worker was registered with (its ?v=). */
const versionOf = (worker) => worker && new URL(worker.scriptURL).searchParams.get('v');

/**
 * Starts the offline machinery; never throws (offline use is a bonus, not a requirement).
 * @param {{ offline?: object }} hook the page's test hook; hook.offline is kept up to date
 */
export function startOffline(hook) {
  const state = { state: 'checking', version: null, error: null };
  hook.offline = state;
  const set = (s, text) => {
    state.state = s;
    if (text !== undefined) $('offline-status').textContent = text;
  };

  showNetwork();
  addEventListener('online', showNetwork);
  addEventListener('offline', showNetwork);

  if (!('serviceWorker' in navigator) || !isSecureContext) {
    set('unsupported', 'This browser cannot keep the page for offline use here (it needs HTTPS or localhost).');
    return;
  }
  $('update-reload').addEventListener('click', applyUpdate);
  register(state, set).catch((e) => {
    state.error = (e && e.message) || String(e);
    set('failed', `The page could not be saved for offline use (${state.error}).`);
  });
}

async function register(state, set) {
  const sw = navigator.serviceWorker;
  let reg = await sw.getRegistration(SCOPE.href);
  if (reg && reg.active) state.version = versionOf(reg.active);
  const version = navigator.onLine === false ? null : await servedVersion();
  if (!version) {
    if (reg && reg.active) set('ready', `Saved for offline use (version ${state.version}).`);
    else set('failed', 'This page is not saved for offline use yet: open it once with a connection.');
    return;
  }
  const known = reg && [reg.active, reg.waiting, reg.installing].some((w) => versionOf(w) === version);
  if (!known) {
    reg = await sw.register(`${SW_URL.href}?v=${version}`, { scope: SCOPE.href, updateViaCache: 'none' });
  }
  follow(reg, state, set, version);
}

/** The version of the files the server has now, or null (offline, or the server is gone: keep what runs). */
async function servedVersion() {
  try {
    const r = await fetch(MANIFEST_URL, { cache: 'no-store' });
    return r.ok ? (await r.json()).version : null;
  } catch {
    return null;
  }
}

/** Follows the registration's workers: installing -> waiting (an update) or active (first install). */
function follow(reg, state, set, version) {
  const sw = navigator.serviceWorker;
  const update = () => {
    set('update', `A new version (${versionOf(reg.waiting)}) is ready.`);
    $('update-notice').hidden = false;
  };
  const settle = () => {
    if (reg.waiting && sw.controller) return update();
    if (reg.active && versionOf(reg.active) === version) {
      state.version = version;
      return set('ready', `Saved for offline use (version ${version}).`);
    }
    if (reg.waiting) return; // activates by itself (no page controlled by the old one)
    if (reg.installing) return set('installing', 'Saving the page and the embedded model for offline use…');
    set('failed', 'The page could not be saved for offline use.');
  };
  const watch = (worker) => {
    if (!worker) return;
    worker.addEventListener('statechange', () => {
      if (worker.state === 'redundant' && !reg.active) {
        state.error = 'the service worker was not installed';
        set('failed', 'The page could not be saved for offline use (reload to try again).');
      } else {
        settle();
      }
    });
  };
  watch(reg.installing);
  watch(reg.waiting);
  reg.addEventListener('updatefound', () => { watch(reg.installing); settle(); });
  settle();
}

/** The "Reload" of the update notice: the waiting worker takes over, then the page reloads. */
async function applyUpdate() {
  const reg = await navigator.serviceWorker.getRegistration(SCOPE.href);
  const waiting = reg && reg.waiting;
  if (!waiting) { location.reload(); return; }
  navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(), { once: true });
  waiting.postMessage({ type: 'skipWaiting' });
}

/** The offline banner: shown while the browser reports no network, naming the models that still load. */
async function showNetwork() {
  const banner = $('net-status');
  if (navigator.onLine) {
    banner.hidden = true;
    return;
  }
  const saved = await savedModels();
  if (navigator.onLine) return;
  banner.hidden = false;
  banner.textContent = 'You are offline. Generate, Write, Detect and Chat still work with the embedded model' +
    (saved.length ? ` and the models saved in this browser (${saved.join(', ')})` : '') +
    '. Loading any other model needs a connection.';
}

/**
 * The models downloaded into this browser's model cache (js/browser/cache.js) other than the embedded
 * one: Hugging Face repositories by name, other folders by address. Complete entries only
 * (the weights are there).
 */
async function savedModels() {
  try {
    if (!(await caches.has('gpt2-wasm-models-v1'))) return [];
    const keys = await (await caches.open('gpt2-wasm-models-v1')).keys();
    const embedded = new URL('../models/', import.meta.url).href;
    const names = [];
    for (const r of keys) {
      if (!r.url.endsWith('/model.safetensors')) continue;
      const folder = r.url.slice(0, -'model.safetensors'.length);
      if (folder === embedded) continue;
      const hf = folder.match(/^https:\/\/huggingface\.co\/([^/]+\/[^/]+)\/resolve\//);
      names.push(hf ? hf[1].split('/')[1] : folder.replace(/^https?:\/\//, ''));
    }
    return names;
  } catch {
    return [];
  }
}

/**
 * Whether the host of a model source answers at all, asked of the service worker (it may make
 * a no-cors request the page may not): 'reachable', 'unreachable', or 'unknown' (no service
 * worker controls the page yet, or no answer within 10 s).
 * @param {string} url the model source the user picked
 * @returns {Promise<'reachable'|'unreachable'|'unknown'>}
 */
export function probeHost(url) {
  const worker = 'serviceWorker' in navigator && navigator.serviceWorker.controller;
  if (!worker) return Promise.resolve('unknown');
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve('unknown'), 10000);
    channel.port1.onmessage = (e) => {
      clearTimeout(timer);
      resolve(e.data && e.data.reachable ? 'reachable' : 'unreachable');
    };
    worker.postMessage({ type: 'probe', url }, [channel.port2]);
  });
}
