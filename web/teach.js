// teach.js - the Teach tab: fine-tunes the loaded model on the user's own text, in its worker
// (RemoteModel.finetune), with a live loss chart, then compares before and after.
//
//   Text: pasted into #teach-text or read from a .txt file (#teach-file); nothing is uploaded.
//   Presets: quick (PRESETS.quick steps) and thorough, or a number of steps (#teach-steps).
//   The last part of the text is held out (not trained on) when it is long enough: the chart
//   shows the training loss of each step and the held-out loss every few steps.
//   Before and after: before the first step the model generates from #teach-prompt with a fixed
//   seed and its perplexity on the held-out part (or on the whole text when nothing is held out)
//   is measured; the same is done after training, so the two differ only by the weights. This
//   keeps one model in memory (no second copy of the original in another worker).
//   Stop (#teach-stop) ends at a step boundary: the model keeps the steps done.
//   Download: the taught model's four files (RemoteModel.save), one button each.
//   Keep (#teach-keep, named by #teach-keep-name): the same four files kept in the browser's
//   storage (js/browser/cache.js keepModel); #teach-kept lists the kept models, each with a Delete
//   button, and the model picker offers them ('kept:<id>', "Taught: <name>, <date>", in the
//   optgroup #kept-models), loaded from storage without a download (keptSource).
//
// Test hook: hook.teach = { state: 'idle'|'training'|'done'|'stopped'|'failed', runs, steps,
//   options, ids, heldOut, before: { text, perplexity }, after: { ... }, trainMs }
//   steps: the FinetuneStep objects of the latest run; options: what finetune() was given;
//   ids: the training token ids; trainMs: time of the finetune loop; kept: the kept models'
//   index entries, after each refresh.
import { deleteKeptModel, keepModel, keptModelFiles, listKeptModels } from '../js/browser/cache.js';
import { formatBytes, plural } from './format.js';
import { $, clearError, saveFile, showError } from './page.js';

/** Optimiser settings of the presets (steps differ; AdamW, batch 4 x 64 tokens). */
const TRAIN = { batch: 4, seq: 64, lr: 5e-4, optimizer: 'adamw', gradClip: 1, shuffle: 1 };
const PRESETS = { quick: 60, thorough: 200 };
const HOLD_OUT = 0.1; // fraction of the text held out, when that is at least one window
const SAMPLE = { maxTokens: 40, temperature: 0.8, topK: 40, seed: 7 };

/**
 * Wires the Teach tab.
 * @param {object} app what the page shares: getModel() (the loaded RemoteModel or null),
 *   isLoading(), options (web/options.js: readNumber), hook (the test hook), onBusy()
 * @returns {{ update: () => void, stop: () => boolean, readonly busy: boolean }}
 */
export function initTeach(app) {
  const el = {
    text: $('teach-text'), file: $('teach-file'), textInfo: $('teach-text-info'), preset: $('teach-preset'),
    steps: $('teach-steps'), prompt: $('teach-prompt'), start: $('teach-start'), stop: $('teach-stop'),
    status: $('teach-status'), chart: $('teach-chart'), compare: $('teach-compare'),
    beforeText: $('teach-before-text'), afterText: $('teach-after-text'), beforePpl: $('teach-before-ppl'),
    afterPpl: $('teach-after-ppl'), downloads: $('teach-downloads'), keep: $('teach-keep'),
    keepName: $('teach-keep-name'), kept: $('teach-kept'), keptBox: $('teach-kept-box'), modelSelect: $('model-select'),
  };
  const hook = { state: 'idle', runs: 0, steps: [], options: null, ids: null, heldOut: 0, before: null, after: null, trainMs: 0, kept: [] };
  app.hook.teach = hook;
  let controller = null; // while training
  let busy = false;
  let taught = null;     // the model that was taught (downloads are its files)
  let saved = null;      // a promise of its four files, made at the first download
  let keeping = false;   // a keep is being written

  function setBusy(on) {
    busy = on;
    update();
    app.onBusy();
  }

  function update() {
    const model = app.getModel();
    el.start.disabled = !model || busy || app.isLoading();
    el.stop.disabled = !controller;
    const canDownload = !busy && taught !== null && taught === model && !model.disposed;
    for (const b of el.downloads.querySelectorAll('button')) b.disabled = !canDownload;
    el.keep.disabled = !canDownload || keeping;
  }

  el.preset.addEventListener('change', () => {
    if (el.preset.value in PRESETS) el.steps.value = String(PRESETS[el.preset.value]);
  });
  el.steps.addEventListener('input', () => {
    const n = Number(el.steps.value);
    el.preset.value = Object.keys(PRESETS).find((k) => PRESETS[k] === n) ?? 'custom';
  });
  el.file.addEventListener('change', async () => {
    const f = el.file.files && el.file.files[0];
    if (!f) return;
    el.text.value = await f.text();
    el.textInfo.textContent = `${f.name}: ${plural(el.text.value.length, 'character')}.`;
  });
  el.start.addEventListener('click', () => { teach(); });
  el.stop.addEventListener('click', () => { stop(); });
  for (const b of el.downloads.querySelectorAll('button')) b.addEventListener('click', () => download(b.dataset.file));
  el.keep.addEventListener('click', () => { keep(); });

  /** Stops a running training at the next step boundary; false when none runs. */
  function stop() {
    if (!controller) return false;
    controller.abort();
    return true;
  }

  async function teach() {
    const model = app.getModel();
    if (!model || busy) return;
    clearError();
    let steps;
    try {
      steps = app.options.readNumber(el.steps); // a whole number in the field's own range
    } catch (e) {
      showError('Check the number of steps.', e.message);
      return;
    }
    const text = el.text.value;
    hook.runs++;
    hook.state = 'training';
    hook.steps = [];
    hook.before = hook.after = null;
    taught = null;
    saved = null;
    controller = new AbortController();
    setBusy(true);
    el.compare.hidden = true;
    drawChart([], steps);
    let t0 = 0;
    try {
      const ids = await model.tokenize(text);
      const window = TRAIN.seq + 1;
      if (ids.length < 2 * window) {
        throw new Error(`The text has ${plural(ids.length, 'token')}; at least ${2 * window} are needed (about ${2 * window * 4} characters).`);
      }
      // Hold out the last part when it holds a whole window and the rest at least one.
      // (finetune holds out floor(length * valFraction) tokens: computed the same way here)
      const valFraction = Math.floor(ids.length * HOLD_OUT) >= window ? HOLD_OUT
        : ids.length >= 4 * window ? (window + 1) / ids.length : 0;
      const nVal = Math.floor(ids.length * valFraction);
      const heldOut = nVal > 0 ? ids.slice(ids.length - nVal) : ids;
      hook.heldOut = nVal;
      const options = { ...TRAIN, steps, valFraction, evalEvery: nVal > 0 ? Math.max(1, Math.round(steps / 15)) : 0 };
      hook.options = options;
      hook.ids = ids;
      const prompt = el.prompt.value;
      setStatus('Measuring the model before training…');
      hook.before = await measure(model, prompt, heldOut);
      t0 = performance.now();
      setStatus('Training… (the first step also sets up the optimiser)');
      for await (const s of model.finetune(ids, { ...options, signal: controller.signal })) {
        hook.steps.push(s);
        drawChart(hook.steps, steps);
        const perStep = (performance.now() - t0) / s.step;
        const left = Math.round((perStep * (steps - s.step)) / 1000);
        setStatus(`Step ${s.step} of ${steps}: loss ${s.loss.toFixed(3)}` +
          (s.valLoss !== undefined ? `, held-out ${s.valLoss.toFixed(3)}` : '') +
          `, ${Math.round(s.tokensPerSecond)} tokens/s, about ${formatSeconds(left)} left.`);
      }
      hook.state = 'done';
    } catch (e) {
      if (e && e.name === 'AbortError') {
        hook.state = 'stopped';
      } else {
        hook.state = 'failed';
        setStatus('');
        showError('Training did not run.', e);
      }
    } finally {
      hook.trainMs = t0 ? performance.now() - t0 : 0;
      controller = null;
      update();
    }
    try {
      if (hook.steps.length > 0) {
        taught = model;
        const done = hook.steps.length;
        setStatus(`${hook.state === 'stopped' ? 'Stopped after' : 'Trained'} ${plural(done, 'step')} in ${formatSeconds(Math.round(hook.trainMs / 1000))}` +
          '. Measuring the taught model…');
        const heldOut = hook.heldOut > 0 ? hook.ids.slice(hook.ids.length - hook.heldOut) : hook.ids;
        hook.after = await measure(model, el.prompt.value, heldOut);
        showCompare();
        setStatus(`${hook.state === 'stopped' ? 'Stopped after' : 'Trained'} ${plural(done, 'step')}` +
          `${hook.trainMs ? ` in ${formatSeconds(Math.round(hook.trainMs / 1000))}` : ''}. The loaded model is now the taught one ` +
          '(every tab uses it; Load the model again for the original).');
      }
    } catch (e) {
      showError('The taught model could not be measured.', e);
    } finally {
      setBusy(false);
    }
  }

  /** A sample from prompt (fixed seed) and the perplexity of ids, under the model as it is now. */
  async function measure(model, prompt, ids) {
    const gen = model.generate(prompt, SAMPLE);
    for await (const piece of gen) void piece;
    const { text } = await gen.summary;
    return { text, perplexity: await perplexity(model, ids) };
  }

  /** Perplexity of ids, scored in windows of the model's context that overlap by one token. */
  async function perplexity(model, ids) {
    const n = model.config.nCtx;
    let sum = 0, count = 0;
    for (let i = 0; i + 1 < ids.length; i += n - 1) {
      const r = await model.score(ids.slice(i, i + n), { topK: 0 });
      sum += r.totalLogprob;
      count += r.tokens.length - 1;
    }
    return Math.exp(-sum / count);
  }

  function showCompare() {
    el.beforeText.textContent = hook.before.text;
    el.afterText.textContent = hook.after.text;
    const what = hook.heldOut > 0 ? 'held-out text' : 'whole text (too short to hold some out)';
    el.beforePpl.textContent = `Perplexity on the ${what}: ${hook.before.perplexity.toFixed(2)}`;
    el.afterPpl.textContent = `Perplexity on the ${what}: ${hook.after.perplexity.toFixed(2)}`;
    el.compare.hidden = false;
  }

  async function download(name) {
    if (!taught || taught.disposed) return;
    try {
      const files = await taughtFiles();
      saveFile(new Blob([files[name]]), name);
    } catch (e) {
      saved = null;
      showError(`${name} could not be saved.`, e);
    }
  }

  /** The taught model's files, made once (downloads and keep share them). */
  function taughtFiles() {
    if (!saved) saved = taught.save();
    saved.catch(() => { saved = null; });
    return saved;
  }

  /** Keeps the taught model in the browser's storage under #teach-keep-name. */
  async function keep() {
    if (!taught || taught.disposed || keeping) return;
    keeping = true;
    update();
    setStatus('Keeping the taught model in this browser…');
    try {
      const training = { steps: hook.options?.steps ?? hook.steps.length, losses: hook.steps }; // keepModel keeps step, loss, valLoss
      const entry = await keepModel(await taughtFiles(), el.keepName.value, training);
      setStatus(`Kept "${entry.name}" in this browser (${formatBytes(entry.bytes)}): the Model picker offers it as ${keptLabel(entry)}.`);
      await refreshKept();
    } catch (e) {
      setStatus('');
      showError('The taught model could not be kept.', e);
    } finally {
      keeping = false;
      update();
    }
  }

  /** Lists the kept models in #teach-kept and in the model picker's optgroup #kept-models. */
  async function refreshKept() {
    let list = [];
    try {
      list = await listKeptModels();
    } catch { /* no storage: nothing listed */ }
    hook.kept = list;
    el.kept.replaceChildren(...list.map((m) => {
      const li = document.createElement('li');
      const del = document.createElement('button');
      del.type = 'button';
      del.textContent = 'Delete';
      del.dataset.id = m.id;
      del.setAttribute('aria-label', `Delete ${keptLabel(m)}`);
      del.addEventListener('click', () => { remove(m); });
      li.append(`${keptLabel(m)} · ${formatBytes(m.bytes)} `, del);
      return li;
    }));
    el.keptBox.hidden = list.length === 0;
    let group = document.getElementById('kept-models');
    if (!group) {
      group = document.createElement('optgroup');
      group.id = 'kept-models';
      group.label = 'Taught in this browser';
    }
    const chosen = el.modelSelect.value;
    group.replaceChildren(...list.map((m) => new Option(keptLabel(m), `kept:${m.id}`)));
    if (list.length && !group.parentNode) el.modelSelect.append(group);
    if (!list.length) group.remove();
    if ([...el.modelSelect.options].some((o) => o.value === chosen)) el.modelSelect.value = chosen;
  }

  async function remove(m) {
    try {
      await deleteKeptModel(m.id);
      setStatus(`Deleted ${keptLabel(m)} from this browser.`);
    } catch (e) {
      showError('The kept model could not be deleted.', e);
    }
    await refreshKept();
  }

  /**
   * load()'s source for a kept model ({ source: files, label, total }), read from storage; also
   * draws the loss curve it was taught with, when that was kept with it.
   */
  async function keptSource(id) {
    const entry = hook.kept.find((m) => m.id === id);
    const files = await keptModelFiles(id);
    const total = Object.values(files).reduce((n, b) => n + b.size, 0);
    if (entry?.training && !busy) {
      drawChart(entry.training.losses, entry.training.steps);
      setStatus(`Below: the loss curve "${entry.name}" was taught with.`);
    }
    return { source: files, label: entry ? keptLabel(entry) : 'taught model', total };
  }

  function setStatus(text) { el.status.textContent = text; }

  /** Draws the training loss (every step) and the held-out loss (its steps) as SVG polylines. */
  function drawChart(steps, total) {
    const W = 480, H = 160, pad = 28;
    const values = steps.flatMap((s) => (s.valLoss === undefined ? [s.loss] : [s.loss, s.valLoss]));
    const lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 1;
    const span = hi - lo || 1;
    const x = (step) => pad + ((W - 2 * pad) * (step - 1)) / Math.max(1, total - 1);
    const y = (v) => H - pad - ((H - 2 * pad) * (v - lo)) / span;
    const line = (pts) => pts.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ');
    const train = line(steps.map((s) => [s.step, s.loss]));
    const val = line(steps.filter((s) => s.valLoss !== undefined).map((s) => [s.step, s.valLoss]));
    el.chart.innerHTML =
      `<rect x="${pad}" y="${pad / 2}" width="${W - 2 * pad}" height="${H - 1.5 * pad}" class="frame"/>` +
      `<text x="2" y="${pad / 2 + 10}">${hi.toFixed(2)}</text><text x="2" y="${H - pad}">${lo.toFixed(2)}</text>` +
      `<text x="${W - pad}" y="${H - 6}" text-anchor="end">step ${steps.length ? steps[steps.length - 1].step : 0} / ${total}</text>` +
      `<polyline class="train" points="${train}"/><polyline class="val" points="${val}"/>` +
      `<text x="${pad + 4}" y="${H - 6}" class="train-label">training loss</text>` +
      `<text x="${pad + 110}" y="${H - 6}" class="val-label">held-out loss</text>`;
  }

  update();
  refreshKept();
  return { update, stop, keptSource, get busy() { return busy; } };
}

/** "Taught: <name>, <date>" (the date in the reader's locale). */
function keptLabel(m) {
  const d = new Date(m.date);
  return `Taught: ${m.name}, ${Number.isNaN(d.getTime()) ? m.date : d.toLocaleDateString()}`;
}

/** "42 s" or "3 min 5 s". */
function formatSeconds(s) {
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}
