// app.js - the gpt2-wasm demo page: wires its parts together. Plain ES modules, no framework;
// each part owns its own state and elements, and gets what it needs from the others through
// the `app` object made here:
//   picker.js    the model card: choose, load (into a Web Worker, js/browser/index.js), progress, model line
//   bigmodel.js  size, precision and memory before a download (#model-plan); the draft model
//   options.js   the sampling settings and banned words (Generate, Write's Continue, Chat)
//   generate.js  detect.js  chat.js  write.js  teach.js   one module per tab
//   offline.js   the service worker: offline use and updates (#net-status, ...)
//   page.js      shared: elements, #status, #error, #notice, <body data-state>; format.js: words and numbers
// The element ids each part uses are listed at its top (stable; the browser tests in
// tests/browser/ rely on them). Here:
//   <body data-state>    'starting' | 'loading' | 'ready' | 'generating' | 'idle' (no model) | 'broken'
//   #tab-generate #tab-write #tab-detect #tab-chat #tab-teach   tabs (role=tab) showing
//                        #panel-generate / -write / ... (WAI-ARIA tabs; arrow keys move between them)
//   Ctrl/Cmd+Enter runs the shown tab's action; Esc stops what is running
//
// Test hook: window.__gpt2, one object filled by the parts: ready, model, loads, lastError
// (picker.js); lastSummary, generations (generate.js); analyses, lastScore (detect.js);
// chatSession, chatTurns, lastChatSummary (chat.js); plans, lastPlan, draft, draftLoads,
// draftError (bigmodel.js); write (write.js); teach (teach.js); offline (offline.js).
import { initBigModels } from './bigmodel.js';
import { initChat } from './chat.js';
import { initDetect } from './detect.js';
import { initGenerate } from './generate.js';
import { startOffline } from './offline.js';
import { initOptions } from './options.js';
import { $ } from './page.js';
import { initPicker } from './picker.js';
import { initTeach } from './teach.js';
import { initWrite } from './write.js';

const hook = { lastError: null };
window.__gpt2 = hook;

const picker = initPicker({
  hook,
  keptSource: (id) => teach.keptSource(id),
  onLoadStart: () => generate.stop(),
  onModel: () => { generate.countTokens(); big.onModel(); },
  onBusy: updateButtons,
});
const options = initOptions();
/** What the tabs share: the loaded model, the settings, the test hook, and onBusy() to update every tab's buttons. */
const app = {
  getModel: () => picker.model,
  isLoading: () => picker.loading,
  options,
  hook,
  onBusy: updateButtons,
};
const big = initBigModels({
  getApi: () => picker.api, getModel: app.getModel, getLoaded: () => picker.loaded, sourceOf: picker.sourceOf, hook,
});
const generate = initGenerate({ ...app, big });
const detect = initDetect(app);
const chat = initChat(app);
const write = initWrite(app);
const teach = initTeach(app);
const parts = [generate, detect, chat, write, teach];

function updateButtons() {
  for (const p of parts) p.update();
}

// Tabs
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

document.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    if (!$('panel-detect').hidden) detect.run();
    else if (!$('panel-write').hidden) $('write-continue').click();
    else if (!$('panel-chat').hidden) chat.run();
    else generate.run();
  } else if (e.key === 'Escape') {
    if (!parts.some((p) => p.stop && p.stop())) return;
    e.preventDefault();
  }
});

startOffline(hook);
if (/Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent)) {
  for (const k of document.querySelectorAll('kbd')) if (k.textContent === 'Ctrl') k.textContent = '⌘';
}
picker.start();
