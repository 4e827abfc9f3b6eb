// app.js - the gpt2-wasm demo page: load a GPT-2 checkpoint into a Web Worker (js/browser.js)
// and stream generated text. Plain ES module, no framework.
//
// Element ids (stable; the browser tests in tests/browser/ rely on them):
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
//   #status              one line: what the page is doing ("Ready: …", "Stopped after 12 tokens.")
//   #clear-cache         deletes cached model files; #status says how many entries went
//   #prompt              the prompt <textarea>; #prompt-tokens shows its token count
//   #temperature #top-k #top-p #repetition-penalty #max-tokens #seed   sampling controls
//   #greedy, #defaults   sampling shortcuts
//   #generate, #stop     start / stop a generation (Ctrl/Cmd+Enter generates, Esc stops)
//   #output              the prompt (span.prompt) and the generated text (span.gen, highlighted)
//   #stats               tokens, tokens/s, time to first token, stop reason, seed
//   #error               every failure, in words (hidden when there is none)
//   #notice              things that are not failures (a cancelled load), in words
//   #gen-warnings        the last generation's summary.warnings (e.g. the prompt was truncated)
//   <body data-state>    'starting' | 'loading' | 'ready' | 'generating' | 'idle' (no model) | 'broken'
//   #banned-words        "Never use these words": comma-separated, passed as bannedWords to Generate and Chat
//   #tab-generate #tab-write #tab-detect #tab-chat #tab-teach   tabs (role=tab) showing #panel-generate / -write / ...
//   Write: web/write.js (#write-text, ...); Teach: web/teach.js (#teach-text, ...); offline and updates: web/offline.js (#net-status, ...)
//   Big models: web/bigmodel.js (#model-plan: size, precision and memory before a download; #draft-select, #draft-tokens, #draft-status)
//   Detect: #detect-text, #analyze; #detect-tokens holds span.tok per token (class bucket-0..3 by
//     rank: < 10, < 100, < 1000, more; data-rank; tabindex=0); #detect-detail shows the focused or
//     hovered token's probability, rank and alternatives; #detect-hist li[data-bucket] with
//     .count; #detect-stats the perplexity; #detect-note says when only the last nCtx tokens were used
//   Chat: #chat-log (div.msg.you / div.msg.reply; .forgotten once the model no longer sees them),
//     #chat-input, #chat-send, #chat-stop (or Esc), #chat-regenerate, #chat-reset, #chat-max-tokens, #chat-status
//
// Test hook: window.__gpt2 = { ready, model, lastSummary, lastError, loads, generations,
//   analyses, lastScore, chatSession, chatTurns, lastChatSummary, write, offline }
//   ready: a Promise for the model being loaded (replaced on each Load; resolves to true/false);
//   generations: how many generations have ended (finished, stopped or failed);
//   analyses / chatTurns: how many Analyze / chat replies (Send or Regenerate) have ended;
//   write: see web/write.js; teach: see web/teach.js; offline: see web/offline.js;
//   plans, lastPlan, draft, draftLoads, draftError: see web/bigmodel.js.

import { formatBytes, percent, plural } from './format.js';
import { probeHost, startOffline } from './offline.js';
import { initWrite } from './write.js';
import { initTeach } from './teach.js';
import { initBigModels } from './bigmodel.js';

const $ = (id) => document.getElementById(id);
const el = {
  modelSelect: $('model-select'), modelUrl: $('model-url'), modelUrlField: $('model-url-field'),
  modelFiles: $('model-files'), modelFilesField: $('model-files-field'),
  load: $('load'), cancelLoad: $('cancel-load'), progress: $('progress'), progressText: $('progress-text'),
  status: $('status'), clearCache: $('clear-cache'), prompt: $('prompt'), promptTokens: $('prompt-tokens'),
  temperature: $('temperature'), topK: $('top-k'), topP: $('top-p'),
  repetitionPenalty: $('repetition-penalty'), maxTokens: $('max-tokens'), seed: $('seed'),
  greedy: $('greedy'), defaults: $('defaults'), generate: $('generate'), stop: $('stop'),
  output: $('output'), modelInfo: $('model-info'), stats: $('stats'), error: $('error'), isolation: $('isolation'),
  bannedWords: $('banned-words'),
  detectText: $('detect-text'), analyze: $('analyze'), detectNote: $('detect-note'), detectTokens: $('detect-tokens'),
  detectDetail: $('detect-detail'), detectHist: $('detect-hist'), detectStats: $('detect-stats'),
  chatLog: $('chat-log'), chatInput: $('chat-input'), chatSend: $('chat-send'), chatRegenerate: $('chat-regenerate'),
  chatReset: $('chat-reset'), chatMaxTokens: $('chat-max-tokens'), chatStatus: $('chat-status'),
  chatStop: $('chat-stop'), notice: $('notice'), precision: $('precision'), genWarnings: $('gen-warnings'),
  settings: $('settings'), draftSelect: $('draft-select'), draftTokens: $('draft-tokens'),
};

const DEFAULTS = { temperature: '0.8', topK: '40', topP: '0.95', repetitionPenalty: '1.1', maxTokens: '100', seed: '' };
const FILE_NAMES = ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors'];
const EMBEDDED_URL = new URL('../models/', import.meta.url).href; // models/ of this checkout
const BIG_MODEL_BYTES = 200e6; // an old model bigger than this is freed before loading another

let api = null;          // the js/browser.js module
let model = null;        // the loaded RemoteModel
let modelLabel = '';
let write = null;         // the Write tab (web/write.js)
let teach = null;         // the Teach tab (web/teach.js)
let big = null;           // the size/precision line and the draft model (web/bigmodel.js)
let loadedChoice = null; // { select, url }: what the picker showed when the loaded model was chosen
let loadController = null;
let genController = null;
let busy = false;        // a generation is running
const hook = {
  ready: Promise.resolve(false), model: null, lastSummary: null, lastError: null, loads: 0, generations: 0,
  analyses: 0, lastScore: null, chatSession: null, chatTurns: 0, lastChatSummary: null,
};
window.__gpt2 = hook;

// ---------------------------------------------------------------------------------------------
// Messages

function setState(state) {
  document.body.dataset.state = state;
}

function setStatus(text) {
  el.status.textContent = text;
}

function clearError() {
  el.error.hidden = true;
  el.error.textContent = '';
  showNotice('');
}

/** A message that is not a failure (hidden when text is empty). */
function showNotice(text) {
  el.notice.textContent = text;
  el.notice.hidden = !text;
}

function showError(title, detail) {
  el.error.replaceChildren();
  const strong = document.createElement('strong');
  strong.textContent = title;
  el.error.append(strong);
  if (detail) {
    const p = document.createElement('span');
    p.className = 'detail';
    p.textContent = detail;
    el.error.append(' ', p);
  }
  el.error.hidden = false;
  el.error.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}

const isAbort = (e) => e && (e.name === 'AbortError' || e.code === 'aborted');

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

// ---------------------------------------------------------------------------------------------
// Formatting

function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, '0');
  if (m < 60) return `${m}:${s}`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function formatParams(config) {
  const { nLayer, nEmbd, nVocab, nCtx } = config;
  const inner = config.nInner || 4 * nEmbd;
  const perLayer = 4 * nEmbd * nEmbd + 4 * nEmbd + 2 * nEmbd * inner + inner + nEmbd + 4 * nEmbd;
  const n = nLayer * perLayer + (nVocab + nCtx) * nEmbd + 2 * nEmbd + (config.untiedHead ? nVocab * nEmbd : 0);
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)}M`;
  return `${(n / 1e3).toFixed(0)}k`;
}

// ---------------------------------------------------------------------------------------------
// Progress: one bar for all four files, with speed and time left.

class ProgressView {
  /** @param {number} [total] the bytes to read, when known before the first event (local files) */
  start(total) {
    this.t0 = performance.now();
    this.samples = []; // [time, loaded] over the last few seconds, for the speed
    this.lastPaint = 0;
    el.progress.max = 1;
    el.progress.value = 0;
    el.progressText.textContent = total ? `0% · 0 B of ${formatBytes(total)} · starting…` : 'Starting…';
  }

  update({ phase, loaded = 0, total, notice }) {
    const now = performance.now();
    if (phase === 'ready') {
      el.progress.max = 1;
      el.progress.value = 1;
      const secs = (now - this.t0) / 1000;
      el.progressText.textContent =
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
      el.progress.value = Math.min(1, loaded / total);
      parts.push(`${Math.floor((loaded / total) * 100)}% · ${formatBytes(loaded)} of ${formatBytes(total)}`);
    } else {
      el.progress.removeAttribute('value'); // indeterminate
      parts.push(`${formatBytes(loaded)}`);
    }
    if (Number.isFinite(speed) && speed > 0) {
      parts.push(`${formatBytes(speed)}/s`);
      if (total && loaded < total) parts.push(`${formatDuration((total - loaded) / speed)} left`);
    }
    if (notice) parts.push(notice);
    el.progressText.textContent = parts.join(' · ');
  }

  fail(text) {
    el.progress.value = 0;
    el.progressText.textContent = text;
  }
}
const progressView = new ProgressView();

// ---------------------------------------------------------------------------------------------
// Choosing and loading a model

function showSourceFields() {
  const v = el.modelSelect.value;
  el.modelUrlField.hidden = v !== 'url';
  el.modelFilesField.hidden = v !== 'files';
}

/**
 * A folder URL from what was typed: a full URL, a HF repo page, 'owner/name', or a model name
 * the downloader knows ('gpt2', 'distilgpt2', ...: js/sources.js's MODEL_REPOS).
 */
async function normalizeUrl(text) {
  let s = text.trim();
  if (!s) throw new Error('Type the URL of a folder holding the model files, or a model name such as gpt2.');
  if (/^[\w.-]+$/.test(s)) {
    const { MODEL_REPOS } = await import('../js/sources.js');
    if (!Object.hasOwn(MODEL_REPOS, s)) {
      throw new Error(`"${s}" is not a model name this page knows (${Object.keys(MODEL_REPOS).join(', ')}); type owner/name or a URL.`);
    }
    s = MODEL_REPOS[s];
  }
  if (/^[\w.-]+\/[\w.-]+$/.test(s)) s = `https://huggingface.co/${s}/resolve/main/`;
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

/** The source for loadInWorker(), a label and what the model is, from the picker; throws an Error with words. */
async function chosenSource() {
  const v = el.modelSelect.value;
  // The embedded model is passed as its URL (not undefined) so the worker keeps it in the cache.
  if (v === 'embedded') return { source: EMBEDDED_URL, label: 'Embedded demo model', about: ABOUT.embedded };
  if (v.startsWith('hf:')) {
    const repo = v.slice(3);
    return { source: hfFolder(repo), label: repo.split('/')[1], about: ABOUT[repo] };
  }
  if (v.startsWith('kept:')) return teach.keptSource(v.slice(5)); // a model taught in this browser (web/teach.js)
  if (v === 'url') {
    const url = await normalizeUrl(el.modelUrl.value);
    el.modelUrl.value = url;
    const repo = repoOf(url);
    return { source: url, label: repo || url, about: repo && ABOUT[repo] };
  }
  if (v === 'files') {
    const picked = [...el.modelFiles.files];
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
  if (genController) genController.abort();
  const controller = new AbortController();
  loadController = controller;
  hook.loads++;
  const choice = { select: el.modelSelect.value, url: el.modelUrl.value, source: chosen.source };

  // Free a big model first (two would not fit); keep a small one usable until the new one is ready.
  const old = model;
  if (old && (!old.info || !(old.info.weightsBytes < BIG_MODEL_BYTES))) {
    model = null;
    hook.model = null;
    modelLabel = '';
    el.modelInfo.textContent = '';
    old.dispose().catch(() => {});
  }

  setState('loading');
  updateButtons();
  el.load.disabled = true;
  el.cancelLoad.hidden = false;
  progressView.start(chosen.total);
  setStatus(`Loading ${chosen.label}…`);

  try {
    const m = await api.loadInWorker(chosen.source, {
      signal: controller.signal,
      precision: el.precision.value,
      onProgress: (p) => { if (loadController === controller) progressView.update(p); },
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
    countPromptTokens();
    big.onModel();
    return true;
  } catch (e) {
    if (loadController !== controller) return false;
    hook.lastError = e;
    restoreChoice();
    if (isAbort(e)) {
      progressView.fail('Loading cancelled.');
      showNotice(`Loading was cancelled. ${model ? `Still using ${modelLabel}.` : 'Choose a model and press Load.'}`);
    } else {
      progressView.fail('Loading failed.');
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
      updateButtons();
    }
  }
}

/** After a failed or cancelled load: the picker shows the model that is loaded again. */
function restoreChoice() {
  if (!model || !loadedChoice) return;
  el.modelSelect.value = loadedChoice.select;
  // The URL typed stays for another try, unless the loaded model is itself a custom URL.
  if (loadedChoice.select === 'url') el.modelUrl.value = loadedChoice.url;
  showSourceFields();
}

/** #model-info: what the model is, its size, its weights, and what it runs on. */
function showModelInfo(chosen, m) {
  const c = m.config;
  const info = m.info || {};
  const name = document.createElement('strong');
  name.textContent = chosen.label;
  const parts = [`${formatParams(c)} parameters, ${c.nLayer} layers × ${c.nEmbd}, context ${plural(c.nCtx, 'token')}`];
  if (info.weightsBytes) parts.push(`${info.precision || ''} weights, ${formatBytes(info.weightsBytes)}`.trim());
  // which precision and why (e.g. 'auto' took a smaller one than the file's because that did not fit)
  if (info.precisionReason) parts.push(`precision ${info.precisionReason}`);
  const threads = Number(info.threads) || 1;
  parts.push(`WebAssembly SIMD, ${plural(threads, 'thread')}` +
    (threads === 1 && !globalThis.crossOriginIsolated ? ' (the page is not cross-origin isolated)' : ''));
  if (info.cache && info.cache.hits > 0 && !info.cache.stored && !info.cache.uncached) parts.push('from the browser cache');
  el.modelInfo.replaceChildren(name, `${chosen.about ? `: ${chosen.about}` : ''}. ${parts.join(' · ')}.` +
    (info.cacheNotice ? ` ${info.cacheNotice}` : ''));
}

function startLoad() {
  hook.ready = loadModel();
  return hook.ready;
}

// ---------------------------------------------------------------------------------------------
// Sampling options

/**
 * What is wrong with a number field's value against its own min, max and step (a step of 1:
 * whole numbers), or null when it is fine. Empty is fine when the field has a placeholder
 * (it then means the placeholder, e.g. "random").
 */
function numberProblem(input, name) {
  const raw = input.value.trim();
  if (raw === '' && input.placeholder) return null;
  const min = input.min === '' ? undefined : Number(input.min);
  const max = input.max === '' ? undefined : Number(input.max);
  const integer = input.step === '1';
  const v = Number(raw);
  if (raw !== '' && Number.isFinite(v) && !(integer && !Number.isInteger(v)) &&
      !(min !== undefined && v < min) && !(max !== undefined && v > max)) return null;
  const range = min !== undefined && max !== undefined ? `from ${min} to ${max}` : min !== undefined ? `at least ${min}` : `at most ${max}`;
  return `${name} must be ${integer ? 'a whole number' : 'a number'} ${range}.`;
}

/** Marks a number field invalid (aria-invalid) or valid; returns its problem or null. */
function markNumber(input) {
  const problem = numberProblem(input, fieldName(input));
  if (problem) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
  return problem;
}

const fieldName = (input) => (document.querySelector(`label[for="${input.id}"]`) || {}).textContent || input.id;

/** A number field's value, checked against its min/max/step; throws an Error with words. */
function readNumber(input, { empty } = {}) {
  const problem = markNumber(input);
  if (problem) {
    if (el.settings && el.settings.contains(input)) el.settings.open = true;
    input.focus();
    throw new Error(problem);
  }
  const raw = input.value.trim();
  return raw === '' ? empty : Number(raw);
}

function readOptions() {
  const seed = readNumber(el.seed, { empty: null });
  return {
    temperature: readNumber(el.temperature),
    topK: readNumber(el.topK),
    topP: readNumber(el.topP),
    repetitionPenalty: readNumber(el.repetitionPenalty),
    maxTokens: readNumber(el.maxTokens),
    seed: seed ?? Math.floor(Math.random() * 2 ** 31),
    bannedWords: readBannedWords(),
  };
}

/** The "Never use these words" list: comma-separated, trimmed, empty entries dropped. */
function readBannedWords() {
  return el.bannedWords.value.split(',').map((w) => w.trim()).filter((w) => w !== '');
}

function setOptions(values) {
  for (const [k, v] of Object.entries(values)) {
    el[k].value = v;
    el[k].removeAttribute('aria-invalid');
  }
}

// ---------------------------------------------------------------------------------------------
// Generation

function updateButtons() {
  el.generate.disabled = !model || busy || !!loadController;
  el.stop.disabled = !busy;
  el.analyze.disabled = !model || detectBusy || !!loadController;
  el.chatSend.disabled = !model || chat.busy || !!loadController;
  el.chatStop.disabled = !chat.busy;
  el.chatRegenerate.disabled = !model || chat.busy || !!loadController || chat.replyStart === null || chat.model !== model;
  el.chatReset.disabled = chat.busy || !chat.session;
  el.draftSelect.disabled = busy || !!loadController; // the draft is not changed under a generation
  if (write) write.update();
  if (teach) teach.update();
}

async function generate() {
  if (!model || busy || loadController) return;
  clearError();
  let options, draftOptions;
  try {
    options = readOptions();
    draftOptions = big.options(() => readNumber(el.draftTokens));
  } catch (e) {
    showError('Check the sampling settings.', e.message);
    return;
  }
  const prompt = el.prompt.value;
  const m = model;
  const controller = new AbortController();
  genController = controller;
  busy = true;
  setState('generating');
  updateButtons();
  setStatus('Generating…');
  el.stats.textContent = '';
  showWarnings([]);

  const promptSpan = document.createElement('span');
  promptSpan.className = 'prompt';
  promptSpan.textContent = prompt;
  const genSpan = document.createElement('span');
  genSpan.className = 'gen';
  const genText = document.createTextNode('');
  genSpan.append(genText);
  const caret = document.createElement('span');
  caret.className = 'caret';
  caret.setAttribute('aria-hidden', 'true');
  el.output.replaceChildren(promptSpan, genSpan, caret);

  let tokens = 0;
  const t0 = performance.now();
  let text = '';
  let pending = false;
  const paint = () => { pending = false; genText.data = text; keepScrolled(); };
  const take = (piece) => {
    if (piece.token !== null && piece.token !== undefined) tokens++;
    if (piece.text) {
      text += piece.text;
      if (!pending) { pending = true; requestAnimationFrame(paint); }
    }
  };
  try {
    let gen = m.generate(prompt, { ...options, ...draftOptions, signal: controller.signal });
    if (!gen[Symbol.asyncIterator] && typeof gen.then === 'function') gen = await gen;
    const first = await gen.next();
    if (!first.done) take(first.value);
    for await (const piece of gen) take(piece);
    const summary = await gen.summary;
    hook.lastSummary = summary;
    text = summary.text ?? text;
    paint();
    showStats(summary, options.seed);
    showWarnings(summary.warnings || []);
    const why = {
      max_tokens: 'reached the token limit',
      eot: 'the model ended the text',
      stop_sequence: 'hit a stop sequence',
      context_full: "the model's context is full",
      cancelled: 'stopped',
    }[summary.stopReason] || summary.stopReason;
    setStatus(`Done: ${plural(summary.tokens, 'token')} (${why}).`);
  } catch (e) {
    paint();
    hook.lastError = e;
    if (isAbort(e)) {
      const secs = (performance.now() - t0) / 1000;
      setStatus(`Stopped after ${plural(tokens, 'token')}.`);
      el.stats.textContent = `${plural(tokens, 'token')} in ${secs.toFixed(1)} s · seed ${options.seed} · stopped`;
    } else if (e && e.code === 'range') {
      showError('The prompt is too long for this model.', e.message);
      setStatus('Generation failed.');
    } else if (e && e.code === 'arg') {
      showError('Check the sampling settings.', e.message);
      setStatus('Generation failed.');
    } else {
      showError('Generation failed.', (e && e.message) || String(e));
      setStatus('Generation failed.');
    }
  } finally {
    caret.remove();
    if (genController === controller) genController = null;
    busy = false;
    hook.generations++;
    setState(model ? 'ready' : 'idle');
    updateButtons();
  }
}

function keepScrolled() {
  const o = el.output;
  if (o.scrollHeight - o.scrollTop - o.clientHeight < 80) o.scrollTop = o.scrollHeight;
}

function showStats(summary, seed) {
  const t = summary.timings || {};
  const parts = [plural(summary.tokens, 'token')];
  if (t.tokensPerSecond) parts.push(`${t.tokensPerSecond.toFixed(t.tokensPerSecond < 1 ? 2 : 1)} tokens/s`);
  if (Number.isFinite(t.firstTokenMs)) parts.push(`first token ${Math.round(t.firstTokenMs)} ms`);
  if (Number.isFinite(t.totalMs)) parts.push(`${(t.totalMs / 1000).toFixed(2)} s total`);
  parts.push(`prompt ${plural(summary.promptTokens, 'token')}`);
  parts.push(`seed ${seed}`);
  const draft = big.statsText(summary);
  if (draft) parts.push(draft);
  el.stats.textContent = parts.join(' · ');
}

/** Shows a generation's summary.warnings under the output (hidden when there are none). */
function showWarnings(warnings) {
  const list = warnings || [];
  el.genWarnings.hidden = list.length === 0;
  el.genWarnings.textContent = list.length ? `Note: ${list.join('; ')}.` : '';
}

function stop() {
  if (genController) genController.abort();
}

// ---------------------------------------------------------------------------------------------
// Prompt token count (debounced)

let countTimer = 0;
let countSeq = 0;
function countPromptTokens() {
  clearTimeout(countTimer);
  countTimer = setTimeout(async () => {
    const m = model;
    if (!m) { el.promptTokens.textContent = ''; return; }
    const seq = ++countSeq;
    try {
      const ids = await m.tokenize(el.prompt.value);
      if (seq !== countSeq || m !== model) return;
      const n = ids.length;
      const over = n >= m.config.nCtx;
      el.promptTokens.textContent = `${plural(n, 'token')} of ${m.config.nCtx}${over ? ' — longer than the context: its start will be dropped' : ''}. `;
      el.promptTokens.classList.toggle('warn', over);
    } catch {
      if (seq === countSeq) el.promptTokens.textContent = '';
    }
  }, 250);
}

// ---------------------------------------------------------------------------------------------
// Cache

async function clearCache() {
  clearError();
  if (!api) return;
  el.clearCache.disabled = true;
  try {
    const n = await api.clearModelCache();
    setStatus(`Cleared the model cache: ${n} ${n === 1 ? 'entry' : 'entries'} removed.`);
  } catch (e) {
    showError('Could not clear the cache.', (e && e.message) || String(e));
  } finally {
    el.clearCache.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Tabs: Generate, Detect, Chat (WAI-ARIA tabs; arrow keys move between them)

const tabs = [...document.querySelectorAll('[role="tab"]')];

function selectTab(tab, focus = false) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (focus) tab.focus();
}

// ---------------------------------------------------------------------------------------------
// Detect: colour each token by its rank under the model (GLTR's buckets)

const BUCKETS = ['top 10', 'top 100', 'top 1000', 'beyond 1000'];
let detectBusy = false;

/** GLTR's bucket of a rank (0 = the model's first guess): < 10, < 100, < 1000, the rest. */
function bucketOf(rank) {
  return rank < 10 ? 0 : rank < 100 ? 1 : rank < 1000 ? 2 : 3;
}

/** A token's text made visible: quotes around it, spaces and newlines shown. */
const showToken = (text) => `“${text.replace(/\n/g, '⏎')}”`;

async function analyze() {
  if (!model || detectBusy || loadController) return;
  clearError();
  const text = el.detectText.value;
  if (!text.trim()) {
    showError('Nothing to analyze.', 'Type or paste some text first.');
    return;
  }
  const m = model;
  detectBusy = true;
  updateButtons();
  el.detectStats.textContent = 'Analyzing…';
  try {
    // Everything runs in the worker: tokenizing, and scoring (one forward pass over the text).
    const ids = await m.tokenize(text);
    const nCtx = m.config.nCtx;
    if (ids.length < 2) throw Object.assign(new Error('The text must have at least two tokens.'), { code: 'short' });
    const truncated = ids.length > nCtx;
    const result = await m.score(truncated ? ids.slice(-nCtx) : text, { topK: 5 });
    if (m !== model) return;
    el.detectNote.hidden = !truncated;
    el.detectNote.textContent = truncated
      ? `This text has ${ids.length} tokens, more than the model's context of ${nCtx}: only its last ${nCtx} tokens were analysed (the text before them is greyed out, and the first analysed token has no context).`
      : '';
    renderDetection(result, truncated ? await m.detokenize(ids.slice(0, -nCtx)) : '');
    hook.lastScore = { result, truncated, totalTokens: ids.length };
  } catch (e) {
    hook.lastError = e;
    el.detectStats.textContent = '';
    showError('The text could not be analyzed.', (e && e.message) || String(e));
  } finally {
    detectBusy = false;
    hook.analyses++;
    updateButtons();
  }
}

/** Shows the scored tokens, the bucket histogram and the perplexity. */
function renderDetection(result, skippedText) {
  const counts = [0, 0, 0, 0];
  const frag = document.createDocumentFragment();
  if (skippedText) {
    const skipped = document.createElement('span');
    skipped.className = 'skipped';
    skipped.textContent = skippedText;
    frag.append(skipped);
  }
  result.tokens.forEach((t, i) => {
    const span = document.createElement('span');
    span.textContent = t.text;
    span.dataset.index = String(i);
    if (t.rank === null) {
      span.className = 'tok first';
    } else {
      const b = bucketOf(t.rank);
      counts[b]++;
      span.className = `tok bucket-${b}`;
      span.dataset.rank = String(t.rank);
    }
    // Tokens holding only part of a character have no text of their own: nothing to focus.
    if (t.text !== '') span.tabIndex = 0;
    frag.append(span);
  });
  el.detectTokens.replaceChildren(frag);
  el.detectTokens.tokens = result.tokens;

  const scored = counts.reduce((a, b) => a + b, 0);
  el.detectHist.replaceChildren(...BUCKETS.map((label, b) => {
    const li = document.createElement('li');
    li.dataset.bucket = String(b);
    const name = document.createElement('span');
    name.className = 'label';
    name.textContent = label;
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.className = `fill bucket-${b}`;
    fill.style.width = `${scored ? (counts[b] / scored) * 100 : 0}%`;
    bar.append(fill);
    const count = document.createElement('span');
    count.className = 'count';
    count.textContent = String(counts[b]);
    li.append(name, bar, count);
    li.setAttribute('aria-label', `${label}: ${plural(counts[b], 'token')}`);
    return li;
  }));
  const ppl = result.perplexity;
  el.detectStats.textContent = `Perplexity ${ppl === null ? '–' : ppl.toFixed(1)} · ${plural(scored, 'token')} scored` +
    ` (the first token has no context) · ${scored ? Math.round((counts[0] / scored) * 100) : 0}% in the top 10`;
  el.detectDetail.replaceChildren(helpLine('Hover over or focus a token (Tab) to see its probability, rank and what the model expected instead.'));
}

function helpLine(text) {
  const p = document.createElement('p');
  p.className = 'help';
  p.textContent = text;
  return p;
}

/** Fills the side panel with one token's facts. */
function showTokenDetail(span) {
  const tokens = el.detectTokens.tokens;
  const t = tokens && tokens[Number(span.dataset.index)];
  if (!t) return;
  for (const a of el.detectTokens.querySelectorAll('.tok.active')) a.classList.remove('active');
  span.classList.add('active');
  const head = document.createElement('p');
  head.className = 'tok-head';
  const word = document.createElement('strong');
  word.textContent = showToken(t.text);
  head.append(word);
  if (t.rank === null) {
    el.detectDetail.replaceChildren(head, helpLine('The first token: the model has nothing to predict it from.'));
    return;
  }
  const facts = document.createElement('p');
  facts.className = 'tok-facts';
  facts.textContent = `Probability ${percent(t.logprob)} · rank ${t.rank + 1} (${BUCKETS[bucketOf(t.rank)]}; 1 = the model's first guess)`;
  const title = document.createElement('p');
  title.className = 'help';
  title.textContent = 'The model expected:';
  const list = document.createElement('ol');
  list.className = 'alts';
  for (const a of t.alternatives) {
    const li = document.createElement('li');
    if (a.id === t.id) li.className = 'actual';
    const at = document.createElement('span');
    at.className = 'alt-text';
    at.textContent = showToken(a.text);
    const ap = document.createElement('span');
    ap.className = 'alt-p';
    ap.textContent = percent(a.logprob);
    li.append(at, ' ', ap);
    list.append(li);
  }
  el.detectDetail.replaceChildren(head, facts, title, list);
}

// ---------------------------------------------------------------------------------------------
// Chat: one session in the worker. Turns are plain lines, the simplest format a small model
// trained on prose can follow: "You: <message>\nReply:" is appended, and the model continues
// until the end of the line (stop sequence "\n") or the reply token limit. A reply that ended
// without a newline gets one before the next "You:" line.

const chat = {
  session: null,     // the RemoteSession
  model: null,       // the model it belongs to
  busy: false,
  stopRequested: false,
  replyStart: null,  // the session position before the last reply (Regenerate rewinds there)
  needsNewline: false,
  lastReply: null,   // the last reply's element
  turns: [],         // { you, reply, els } of the conversation shown, oldest first
  regenerations: 0,  // Regenerates of the last reply (they vary a fixed seed)
};

function addMessage(who, text) {
  const div = document.createElement('div');
  div.className = `msg ${who}`;
  const name = document.createElement('span');
  name.className = 'who';
  name.textContent = who === 'you' ? 'You' : 'Reply';
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  div.append(name, body);
  el.chatLog.append(div);
  el.chatLog.scrollTop = el.chatLog.scrollHeight;
  return body;
}

async function newChatSession() {
  if (chat.session) chat.session.dispose().catch(() => {});
  chat.session = await model.session();
  chat.model = model;
  chat.replyStart = null;
  chat.needsNewline = false;
  hook.chatSession = chat.session;
}

/** Generation options for a reply (the Generate tab's sampling and banned words). */
function chatOptions() {
  const options = readOptions();
  options.maxTokens = readNumber(el.chatMaxTokens);
  return { ...options, stop: ['\n'], contextPolicy: 'stop' };
}

/**
 * Runs one chat action (a new turn or a regenerated reply) with the settings read and checked
 * first, the buttons disabled meanwhile, and any failure shown on the page.
 * @param {(options: object) => Promise<void>} work
 */
async function runChatTurn(work) {
  let options;
  try {
    options = chatOptions();
  } catch (e) {
    showError('Check the settings.', e.message);
    return;
  }
  chat.busy = true;
  chat.stopRequested = false;
  updateButtons();
  try {
    await work(options);
  } catch (e) {
    hook.lastError = e;
    showError('The chat failed.', (e && e.message) || String(e));
  } finally {
    chat.busy = false;
    hook.chatTurns++;
    updateButtons();
  }
}

const turnText = (t) => `You: ${t.you}\nReply:${t.reply}\n`;

/**
 * The conversation no longer fits the context with the next turn and its reply: a new session
 * holding the most recent turns that fit, then the new one. The log keeps every turn; the ones
 * the model no longer sees are greyed, under a line saying so.
 * @returns {Promise<boolean>} false when even the new turn alone does not fit
 */
async function slideChat(turn, replyTokens) {
  const nCtx = model.config.nCtx;
  const room = nCtx - replyTokens - (await model.tokenize(turn)).length;
  if (room < 0) return false;
  let kept = 0;
  let used = 0;
  for (let i = chat.turns.length - 1; i >= 0; i--) {
    const n = (await model.tokenize(turnText(chat.turns[i]))).length;
    if (used + n > room) break;
    used += n;
    kept++;
  }
  await newChatSession();
  const keep = chat.turns.slice(chat.turns.length - kept);
  await chat.session.append(keep.map(turnText).join('') + turn);
  const forgotten = chat.turns.slice(0, chat.turns.length - kept);
  for (const t of forgotten) for (const e of t.els) e.classList.add('forgotten');
  el.chatLog.querySelectorAll('.slid-note').forEach((n) => n.remove());
  if (forgotten.length) {
    const note = document.createElement('p');
    note.className = 'slid-note';
    note.textContent = `The model no longer sees the ${plural(forgotten.length, 'turn')} above (its context holds ${nCtx} tokens).`;
    forgotten[forgotten.length - 1].els[1].after(note);
  }
  el.chatStatus.textContent = `The conversation outgrew the model's context (${nCtx} tokens): it now sees ` +
    `${kept === 1 ? 'the last turn and ' : kept ? `the last ${kept} turns and ` : ''}this one; the earlier turns stay in the log, greyed.`;
  return true;
}

async function chatSend() {
  if (!model || chat.busy || loadController) return;
  clearError();
  const message = el.chatInput.value.replace(/\s+/g, ' ').trim();
  if (!message) { el.chatInput.focus(); return; }
  await runChatTurn(async (options) => {
    if (!chat.session || chat.model !== model || chat.session.disposed) {
      el.chatLog.replaceChildren();
      chat.turns = [];
      await newChatSession();
    }
    const turn = `You: ${message}\nReply:`;
    const text = (chat.needsNewline ? '\n' : '') + turn;
    const need = (await model.tokenize(text)).length + options.maxTokens;
    let slid = false;
    if (chat.session.lastPosition + need > model.config.nCtx) {
      if (!(await slideChat(turn, options.maxTokens))) {
        throw new Error(`This message and a reply of ${plural(options.maxTokens, 'token')} do not fit the model's context of ${model.config.nCtx} tokens: shorten it or lower Reply tokens.`);
      }
      slid = true;
    } else {
      await chat.session.append(text);
    }
    const you = addMessage('you', message);
    el.chatInput.value = '';
    chat.replyStart = chat.session.lastPosition;
    chat.lastReply = addMessage('reply', '');
    chat.regenerations = 0;
    const entry = { you: message, reply: '', els: [you.parentElement, chat.lastReply.parentElement] };
    chat.turns.push(entry);
    entry.reply = await chatReply(options, slid);
  });
}

/** Streams a reply from the end of the session into chat.lastReply; returns its text. */
async function chatReply(options, keepStatus = false, note = '') {
  const s = chat.session;
  const target = chat.lastReply;
  target.textContent = '';
  target.parentElement.classList.remove('empty');
  target.parentElement.classList.add('streaming');
  el.chatLog.setAttribute('aria-busy', 'true'); // screen readers hear the reply once, when it is complete
  const before = keepStatus ? `${el.chatStatus.textContent} ` : '';
  el.chatStatus.textContent = `${before}Replying…`;
  let text = '';
  try {
    const gen = s.generate(options);
    for await (const piece of gen) {
      text += piece.text;
      target.textContent = text;
      if (chat.stopRequested) break;
    }
    const summary = await gen.summary;
    hook.lastChatSummary = summary;
    if (summary.stopReason === 'cancelled') {
      // The worker may have made a token more than was shown: the session ends where the reply shown does.
      await s.rewind(chat.replyStart + summary.tokens);
    }
    chat.needsNewline = summary.stopReason !== 'stop_sequence';
    target.textContent = summary.text.trim() ? summary.text : '';
    if (!summary.text.trim()) target.parentElement.classList.add('empty');
    el.chatStatus.textContent = before + (summary.stopReason === 'cancelled' ? `Stopped after ${plural(summary.tokens, 'token')}. ` : '') +
      `${plural(summary.tokens, 'token')} · ${s.lastPosition} of ${model.config.nCtx} context tokens used` +
      (summary.stopReason === 'context_full' ? ' · the context is full: the next turn slides it' : '') +
      (note ? ` · ${note}` : '');
    return summary.text;
  } finally {
    target.parentElement.classList.remove('streaming');
    el.chatLog.removeAttribute('aria-busy');
  }
}

function chatStop() {
  if (!chat.busy) return false;
  chat.stopRequested = true;
  return true;
}

async function chatRegenerate() {
  if (!model || chat.busy || chat.replyStart === null || chat.model !== model) return;
  clearError();
  await runChatTurn(async (options) => {
    await chat.session.rewind(chat.replyStart);
    // A fixed seed would give the same reply again: each Regenerate takes the next seed. With
    // temperature 0 the reply is always the same one, and the status says why.
    let note = '';
    if (options.temperature === 0) {
      note = 'temperature 0 (greedy) always gives this same reply: raise the temperature for another';
    } else if (el.seed.value.trim() !== '') {
      chat.regenerations++;
      options.seed = (options.seed + chat.regenerations) % 4294967296;
      note = `seed ${options.seed} (the Seed field is fixed, so each Regenerate takes the next seed)`;
    }
    const text = await chatReply(options, false, note);
    const last = chat.turns[chat.turns.length - 1];
    if (last) last.reply = text;
  });
}

async function chatReset() {
  if (chat.busy) return;
  if (chat.session) await chat.session.dispose().catch(() => {});
  chat.session = null;
  chat.model = null;
  chat.replyStart = null;
  chat.needsNewline = false;
  chat.lastReply = null;
  chat.turns = [];
  hook.chatSession = null;
  el.chatLog.replaceChildren();
  el.chatStatus.textContent = 'A new conversation.';
  updateButtons();
}

// ---------------------------------------------------------------------------------------------
// Wiring

el.modelSelect.addEventListener('change', () => {
  showSourceFields();
  clearError();
  if (el.modelSelect.value === 'url') el.modelUrl.focus();
});
el.modelUrl.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); startLoad(); } });
el.modelFiles.addEventListener('change', () => {
  const n = el.modelFiles.files.length;
  if (n) setStatus(`${n} file${n === 1 ? '' : 's'} chosen — press Load.`);
});
el.load.addEventListener('click', startLoad);
el.cancelLoad.addEventListener('click', () => { if (loadController) loadController.abort(); });
el.generate.addEventListener('click', generate);
el.stop.addEventListener('click', stop);
el.clearCache.addEventListener('click', clearCache);
el.greedy.addEventListener('click', () => setOptions({ temperature: '0', topK: '0', topP: '1', repetitionPenalty: '1' }));
el.defaults.addEventListener('click', () => setOptions(DEFAULTS));
el.prompt.addEventListener('input', countPromptTokens);
for (const t of tabs) {
  t.addEventListener('click', () => selectTab(t));
  t.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(t);
    const j = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? tabs.length - 1 : null;
    if (j === null) return;
    e.preventDefault();
    selectTab(tabs[(j + tabs.length) % tabs.length], true);
  });
}
el.analyze.addEventListener('click', analyze);
for (const type of ['focusin', 'mouseover']) {
  el.detectTokens.addEventListener(type, (e) => {
    const span = e.target.closest && e.target.closest('.tok');
    if (span) showTokenDetail(span);
  });
}
el.chatSend.addEventListener('click', chatSend);
el.chatInput.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.metaKey) { e.preventDefault(); chatSend(); }
});
el.chatRegenerate.addEventListener('click', chatRegenerate);
el.chatStop.addEventListener('click', chatStop);
el.chatReset.addEventListener('click', chatReset);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    if (!$('panel-detect').hidden) analyze();
    else if (!$('panel-write').hidden) $('write-continue').click();
    else if (!$('panel-chat').hidden) chatSend();
    else generate();
  } else if (e.key === 'Escape') {
    if (busy) stop();
    else if (!chatStop() && !(write && write.stop()) && !(teach && teach.stop())) return;
    e.preventDefault();
  }
});
for (const input of document.querySelectorAll('input[type="number"]')) {
  input.addEventListener('input', () => markNumber(input));
}
el.precision.addEventListener('focus', () => { $('precision-help').hidden = false; });
// The sampling options sit beside the output on wide screens (open), below it on phones (closed).
if (matchMedia('(min-width: 960px)').matches) el.settings.open = true;

write = initWrite({
  getModel: () => model,
  isLoading: () => !!loadController,
  readOptions,
  bannedWords: readBannedWords,
  showError,
  clearError,
  hook,
  onBusy: updateButtons,
});
big = initBigModels({
  getApi: () => api,
  getModel: () => model,
  getLoaded: () => loadedChoice,
  sourceOf: (v) => (v.startsWith('hf:') ? hfFolder(v.slice(3)) : v === 'url' && el.modelUrl.value.trim() ? normalizeUrl(el.modelUrl.value) : undefined),
  hook,
});
teach = initTeach({
  getModel: () => model, isLoading: () => !!loadController, showError, clearError, hook, onBusy: updateButtons,
});
startOffline(hook);
if (/Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent)) {
  for (const k of document.querySelectorAll('kbd')) if (k.textContent === 'Ctrl') k.textContent = '⌘';
}
showSourceFields();

// Start: import the worker runtime, then load the embedded model right away.
(async () => {
  try {
    api = await import('../js/browser/index.js');
  } catch (e) {
    setState('broken');
    setStatus('Not available.');
    showError('The page could not start: the WebAssembly runtime did not load.', (e && e.message) || String(e));
    return;
  }
  try {
    if (typeof api.isCrossOriginIsolated === 'function' && !api.isCrossOriginIsolated()) {
      el.isolation.textContent = 'Not cross-origin isolated (slower path).';
    }
  } catch { /* informational only */ }
  if (el.modelSelect.value !== 'embedded') { // the browser restored another choice: let the user press Load
    setState('idle');
    setStatus('Choose a model and press Load.');
    return;
  }
  startLoad();
})();
