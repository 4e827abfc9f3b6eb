// picker.js - the model card of the demo page: choosing a model, loading it into a Web Worker
// (js/browser/index.js loadInWorker) with a progress bar, and saying what is loaded. It owns the
// loaded model; the tabs ask for it through getModel() (see app.js).
//
//   #model-select        <select>: 'embedded' | 'hf:<owner>/<repo>' | 'url' | 'files' | 'kept:<id>' (a model
//                        taught and kept in this browser, web/teach.js); after a failed
//                        or cancelled load it shows the model that is loaded
//   #model-url           custom folder URL (shown for 'url'); an 'owner/name' HF repo or a model
//                        name the downloader knows (gpt2, distilgpt2, ...) works too
//   #precision           'auto' (as stored) | 'f16' | 'q8_0': the precision option of the next load
//   #model-files         <input type=file multiple> for the four files (shown for 'files')
//   #load, #cancel-load  start / abort loading the selected model
//   #progress            <progress max=1>: fraction of bytes loaded (no value = size unknown)
//   #progress-text       "12.3 MB of 548 MB · 8.1 MB/s · 1:05 left", "100% · …" when done
//   #model-info          the loaded model: what it is and was trained on, parameters, layers,
//                        context, weights, the build and threads it runs on
//   #clear-cache         deletes cached model files; #status says how many entries went
//   #isolation           says when the page is not cross-origin isolated (one thread)
//   The size of a download and the memory it needs: web/bigmodel.js (#model-plan).
//
// Test hook (window.__gpt2): ready (a Promise for the model being loaded, replaced on each
//   Load; resolves to true/false), model, loads, lastError.
import { FILE_NAMES, MODEL_REPOS } from '../js/sources.js';
import { formatBytes, plural } from './format.js';
import { probeHost } from './offline.js';
import { $, clearError, isAbort, make, setState, setStatus, showError, showNotice } from './page.js';

const EMBEDDED_URL = new URL('../models/', import.meta.url).href; // models/ of this checkout
const BIG_MODEL_BYTES = 200e6; // an old model bigger than this is freed before loading another

/** What the well-known models are and were trained on (shown with the loaded model). */
const ABOUT = {
  embedded: "a small GPT-2 trained here on Jane Austen's six novels: it writes period prose, with no facts or plot",
  'distilbert/distilgpt2': 'a GPT-2 distilled by Hugging Face, trained on OpenWebText (English web pages)',
  'openai-community/gpt2': "OpenAI's GPT-2, trained on WebText (8 million English web pages)",
  'openai-community/gpt2-medium': "OpenAI's GPT-2 medium, trained on WebText (8 million English web pages)",
  'openai-community/gpt2-large': "OpenAI's GPT-2 large, trained on WebText (8 million English web pages)",
  'openai-community/gpt2-xl': "OpenAI's GPT-2 XL, the largest, trained on WebText (8 million English web pages)",
};

/** The folder URL of a Hugging Face repository's main branch. */
const hfFolder = (repo) => `https://huggingface.co/${repo}/resolve/main/`;

/** The HF repository of a folder URL on huggingface.co, or null. */
const repoOf = (url) => (url.match(/^https:\/\/huggingface\.co\/([^/]+\/[^/]+)\/resolve\//) || [])[1] || null;

/**
 * A folder URL from what was typed: a full URL, a HF repo page, 'owner/name', or a model name
 * the downloader knows ('gpt2', 'distilgpt2', ...: js/sources.js's MODEL_REPOS).
 */
async function normalizeUrl(text) {
  let s = text.trim();
  if (!s) throw new Error('Type the URL of a folder holding the model files, or a model name such as gpt2.');
  if (/^[\w.-]+$/.test(s)) {
    if (!Object.hasOwn(MODEL_REPOS, s)) {
      throw new Error(`"${s}" is not a model name this page knows (${Object.keys(MODEL_REPOS).join(', ')}); type owner/name or a URL.`);
    }
    s = MODEL_REPOS[s];
  }
  if (/^[\w.-]+\/[\w.-]+$/.test(s)) s = hfFolder(s);
  let url;
  try {
    url = new URL(s);
  } catch {
    throw new Error(`"${s}" is not a URL.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('The URL must start with http:// or https://.');
  const hf = url.hostname === 'huggingface.co' && url.pathname.match(/^\/([^/]+\/[^/]+)\/?(?:tree\/([^/]+)\/?)?$/);
  if (hf) return `https://huggingface.co/${hf[1]}/resolve/${hf[2] || 'main'}/`;
  // A link to one of the files: use its folder.
  const file = FILE_NAMES.find((f) => url.pathname.endsWith('/' + f));
  if (file) url.pathname = url.pathname.slice(0, -file.length);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url.href;
}

/** Words for a failure while loading a model from `source` (a URL, or files). */
async function explainLoadError(e, source) {
  const msg = (e && e.message) || String(e);
  switch (e && e.code) {
    case 'nomem':
      return ['This model is too big for the memory this page can use.',
        `Try a smaller one (distilgpt2 or gpt2), a lower precision (q8_0), or close other tabs. (${msg})`];
    case 'io':
      if (/\b404\b/.test(msg)) return ['The model files were not found at this address.', msg];
      if (/\bHTTP \d{3}\b/.test(msg)) return ['The server refused to send the model files.', msg];
      if (typeof source === 'string' && /failed to fetch|networkerror|network error|load failed/i.test(msg)) {
        return explainNetworkFailure(source, msg);
      }
      return ['The model files could not be downloaded or read.', msg];
    case 'format':
      return ['These files are not a valid GPT-2 checkpoint.', msg];
    case 'shape':
      return ['These files do not have the shape of a GPT-2 model.', msg];
    case 'unsupported':
      return ['This checkpoint uses something this build does not support.', msg];
    case 'arg':
      return ['The model could not be loaded.', msg];
  }
  if (e instanceof TypeError) return ['Network error: the model files could not be fetched.', msg];
  return ['The model could not be loaded.', msg];
}

/**
 * A download that failed without an HTTP answer: offline, a host that cannot be reached, or a
 * server that answers without the CORS headers a page needs (browsers report all three alike).
 * The offline case is the browser's own report; the other two are told apart by asking the
 * service worker whether the host answers at all (probeHost).
 */
async function explainNetworkFailure(source, msg) {
  const host = new URL(source).host;
  if (navigator.onLine === false) {
    return ['You are offline.', `This model is not saved in this browser, so it needs a connection to ${host}. ` +
      `The embedded model and models downloaded before still work offline. (${msg})`];
  }
  const reach = await probeHost(source);
  if (reach === 'unreachable') {
    return [`${host} could not be reached.`, `Check the address and your connection. (${msg})`];
  }
  if (reach === 'reachable') {
    return [`${host} answered, but does not let this page read its files.`,
      'A page may only read files from another site that allows it with cross-origin (CORS) headers ' +
      `(Access-Control-Allow-Origin); Hugging Face does, this server does not. (${msg})`];
  }
  return [`The model files could not be downloaded from ${host}.`,
    'Either the host cannot be reached (check the address and your connection), or it does not allow ' +
    `cross-origin requests (CORS). (${msg})`];
}

function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, '0');
  if (m < 60) return `${m}:${s}`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A parameter count for people: 7.2M, 124M, 1.56B. */
function formatParams(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)}M`;
  return `${(n / 1e3).toFixed(0)}k`;
}

/** One bar (#progress, #progress-text) for all four files, with speed and time left. */
class ProgressView {
  constructor(bar, text) {
    this.bar = bar;
    this.text = text;
  }

  /** @param {number} [total] the bytes to read, when known before the first event (local files) */
  start(total) {
    this.t0 = performance.now();
    this.samples = []; // [time, loaded] over the last few seconds, for the speed
    this.lastPaint = 0;
    this.bar.max = 1;
    this.bar.value = 0;
    this.text.textContent = total ? `0% · 0 B of ${formatBytes(total)} · starting…` : 'Starting…';
  }

  update({ phase, loaded = 0, total, notice }) {
    const now = performance.now();
    if (phase === 'ready') {
      this.bar.max = 1;
      this.bar.value = 1;
      const secs = (now - this.t0) / 1000;
      this.text.textContent =
        `100% · ${formatBytes(total ?? loaded)} in ${secs < 10 ? secs.toFixed(1) : Math.round(secs)} s` +
        (notice ? ` · ${notice}` : '');
      return;
    }
    this.samples.push([now, loaded]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 3000) this.samples.shift();
    if (now - this.lastPaint < 100) return; // repaint at most ten times a second
    this.lastPaint = now;
    const [t1, l1] = this.samples[0];
    const speed = now - t1 > 250 ? ((loaded - l1) / (now - t1)) * 1000 : NaN;
    const parts = [];
    if (total) {
      this.bar.value = Math.min(1, loaded / total);
      parts.push(`${Math.floor((loaded / total) * 100)}% · ${formatBytes(loaded)} of ${formatBytes(total)}`);
    } else {
      this.bar.removeAttribute('value'); // indeterminate
      parts.push(`${formatBytes(loaded)}`);
    }
    if (Number.isFinite(speed) && speed > 0) {
      parts.push(`${formatBytes(speed)}/s`);
      if (total && loaded < total) parts.push(`${formatDuration((total - loaded) / speed)} left`);
    }
    if (notice) parts.push(notice);
    this.text.textContent = parts.join(' · ');
  }

  fail(text) {
    this.bar.value = 0;
    this.text.textContent = text;
  }
}

/**
 * Wires the model card.
 * @param {object} app hook (the test hook), keptSource(id) (a kept model's source, label and
 *   about: web/teach.js), onLoadStart() (a load begins: stop the generation), onModel() (a new
 *   model is ready), onBusy() (loading started or ended: update the buttons)
 * @returns {{ readonly model: any, readonly loading: boolean, readonly api: any, readonly loaded: any,
 *   sourceOf: (select: string) => string | undefined | Promise<string>, start: () => Promise<void> }}
 *   model: the loaded RemoteModel or null; loading: a load is running; api: the js/browser/index.js
 *   module (null until start() imported it); loaded: { select, url, source } of the loaded
 *   model's choice; sourceOf: the folder URL of a #model-select value (undefined without one)
 */
export function initPicker(app) {
  const el = {
    select: $('model-select'), url: $('model-url'), urlField: $('model-url-field'),
    files: $('model-files'), filesField: $('model-files-field'), precision: $('precision'),
    load: $('load'), cancelLoad: $('cancel-load'), clearCache: $('clear-cache'), info: $('model-info'),
  };
  const { hook } = app;
  Object.assign(hook, { ready: Promise.resolve(false), model: null, loads: 0 });
  const progress = new ProgressView($('progress'), $('progress-text'));

  let api = null;          // the js/browser/index.js module
  let model = null;        // the loaded RemoteModel
  let modelLabel = '';
  let loadedChoice = null; // { select, url, source }: what the picker showed when the loaded model was chosen
  let loadController = null;

  function showSourceFields() {
    const v = el.select.value;
    el.urlField.hidden = v !== 'url';
    el.filesField.hidden = v !== 'files';
  }

  /** The source for loadInWorker(), a label and what the model is, from the picker; throws an Error with words. */
  async function chosenSource() {
    const v = el.select.value;
    // The embedded model is passed as its URL (not undefined) so the worker keeps it in the cache.
    if (v === 'embedded') return { source: EMBEDDED_URL, label: 'Embedded demo model', about: ABOUT.embedded };
    if (v.startsWith('hf:')) {
      const repo = v.slice(3);
      return { source: hfFolder(repo), label: repo.split('/')[1], about: ABOUT[repo] };
    }
    if (v.startsWith('kept:')) return app.keptSource(v.slice(5)); // a model taught in this browser (web/teach.js)
    if (v === 'url') {
      const url = await normalizeUrl(el.url.value);
      el.url.value = url;
      const repo = repoOf(url);
      return { source: url, label: repo || url, about: repo && ABOUT[repo] };
    }
    if (v === 'files') {
      const picked = [...el.files.files];
      const files = {};
      for (const f of picked) if (FILE_NAMES.includes(f.name)) files[f.name] = f;
      const missing = FILE_NAMES.filter((n) => !files[n]);
      if (missing.length) {
        throw new Error(picked.length === 0
          ? 'Choose the four model files first.'
          : `Missing: ${missing.join(', ')}. Select all four files at once.`);
      }
      const total = FILE_NAMES.reduce((sum, n) => sum + files[n].size, 0);
      return { source: files, label: `local files (${formatBytes(files['model.safetensors'].size)})`, total };
    }
    throw new Error('Choose a model.');
  }

  async function loadModel() {
    clearError();
    let chosen;
    try {
      chosen = await chosenSource();
    } catch (e) {
      showError('Cannot load this model.', e.message);
      return false;
    }
    if (!api) {
      showError('The page could not start.', 'The WebAssembly runtime did not load.');
      return false;
    }
    if (loadController) loadController.abort();
    app.onLoadStart();
    const controller = new AbortController();
    loadController = controller;
    hook.loads++;
    const choice = { select: el.select.value, url: el.url.value, source: chosen.source };

    // Free a big model first (two would not fit); keep a small one usable until the new one is ready.
    const old = model;
    if (old && (!old.info || !(old.info.weightsBytes < BIG_MODEL_BYTES))) {
      model = null;
      hook.model = null;
      modelLabel = '';
      el.info.textContent = '';
      old.dispose().catch(() => {});
    }

    setState('loading');
    app.onBusy();
    el.load.disabled = true;
    el.cancelLoad.hidden = false;
    progress.start(chosen.total);
    setStatus(`Loading ${chosen.label}…`);

    try {
      const m = await api.loadInWorker(chosen.source, {
        signal: controller.signal,
        precision: el.precision.value,
        onProgress: (p) => { if (loadController === controller) progress.update(p); },
      });
      if (loadController !== controller) { // superseded by another load
        m.dispose().catch(() => {});
        return false;
      }
      if (model && model !== m) model.dispose().catch(() => {});
      model = m;
      hook.model = m;
      modelLabel = chosen.label;
      loadedChoice = choice;
      showModelInfo(chosen, m);
      setStatus(`Ready: ${chosen.label}.`);
      setState('ready');
      app.onModel();
      return true;
    } catch (e) {
      if (loadController !== controller) return false;
      hook.lastError = e;
      restoreChoice();
      if (isAbort(e)) {
        progress.fail('Loading cancelled.');
        showNotice(`Loading was cancelled. ${model ? `Still using ${modelLabel}.` : 'Choose a model and press Load.'}`);
      } else {
        progress.fail('Loading failed.');
        const [title, detail] = await explainLoadError(e, chosen.source);
        if (loadController !== controller) return false;
        showError(title, model ? `${detail} Still using ${modelLabel}.` : detail);
      }
      setStatus(model ? `Ready: ${modelLabel} (the new model did not load).` : 'No model loaded.');
      setState(model ? 'ready' : 'idle');
      return false;
    } finally {
      if (loadController === controller) {
        loadController = null;
        el.load.disabled = false;
        el.cancelLoad.hidden = true;
        app.onBusy();
      }
    }
  }

  /** After a failed or cancelled load: the picker shows the model that is loaded again. */
  function restoreChoice() {
    if (!model || !loadedChoice) return;
    el.select.value = loadedChoice.select;
    // The URL typed stays for another try, unless the loaded model is itself a custom URL.
    if (loadedChoice.select === 'url') el.url.value = loadedChoice.url;
    showSourceFields();
  }

  /** #model-info: what the model is, its size, its weights, and what it runs on. */
  function showModelInfo(chosen, m) {
    const c = m.config;
    const info = m.info || {};
    const parts = [`${formatParams(info.parameters)} parameters, ${c.nLayer} layers × ${c.nEmbd}, context ${plural(c.nCtx, 'token')}`];
    if (info.weightsBytes) parts.push(`${info.precision || ''} weights, ${formatBytes(info.weightsBytes)}`.trim());
    // which precision and why (e.g. 'auto' took a smaller one than the file's because that did not fit)
    if (info.precisionReason) parts.push(`precision ${info.precisionReason}`);
    const threads = Number(info.threads) || 1;
    parts.push(`WebAssembly SIMD, ${plural(threads, 'thread')}` +
      (threads === 1 && !globalThis.crossOriginIsolated ? ' (the page is not cross-origin isolated)' : ''));
    if (info.cache && info.cache.hits > 0 && !info.cache.stored && !info.cache.uncached) parts.push('from the browser cache');
    el.info.replaceChildren(make('strong', '', chosen.label), `${chosen.about ? `: ${chosen.about}` : ''}. ${parts.join(' · ')}.` +
      (info.cacheNotice ? ` ${info.cacheNotice}` : ''));
  }

  function startLoad() {
    hook.ready = loadModel();
    return hook.ready;
  }

  async function clearCache() {
    clearError();
    if (!api) return;
    el.clearCache.disabled = true;
    try {
      const n = await api.clearModelCache();
      setStatus(`Cleared the model cache: ${n} ${n === 1 ? 'entry' : 'entries'} removed.`);
    } catch (e) {
      showError('Could not clear the cache.', e);
    } finally {
      el.clearCache.disabled = false;
    }
  }

  /** Imports the worker runtime, then loads the embedded model right away. */
  async function start() {
    try {
      api = await import('../js/browser/index.js');
    } catch (e) {
      setState('broken');
      setStatus('Not available.');
      showError('The page could not start: the WebAssembly runtime did not load.', e);
      return;
    }
    if (!api.isCrossOriginIsolated()) $('isolation').textContent = 'Not cross-origin isolated (slower path).';
    if (el.select.value !== 'embedded') { // the browser restored another choice: let the user press Load
      setState('idle');
      setStatus('Choose a model and press Load.');
      return;
    }
    startLoad();
  }

  el.select.addEventListener('change', () => {
    showSourceFields();
    clearError();
    if (el.select.value === 'url') el.url.focus();
  });
  el.url.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); startLoad(); } });
  el.files.addEventListener('change', () => {
    const n = el.files.files.length;
    if (n) setStatus(`${plural(n, 'file')} chosen — press Load.`);
  });
  el.load.addEventListener('click', startLoad);
  el.cancelLoad.addEventListener('click', () => { if (loadController) loadController.abort(); });
  el.clearCache.addEventListener('click', clearCache);
  el.precision.addEventListener('focus', () => { $('precision-help').hidden = false; });
  showSourceFields();

  return {
    get model() { return model; },
    get loading() { return !!loadController; },
    get api() { return api; },
    get loaded() { return loadedChoice; },
    sourceOf: (v) => (v.startsWith('hf:') ? hfFolder(v.slice(3)) : v === 'url' && el.url.value.trim() ? normalizeUrl(el.url.value) : undefined),
    start,
  };
}
