// generate.js - the Generate tab: streams a continuation of #prompt into #output with the
// sampling settings (web/options.js) and the draft model, if one is chosen (web/bigmodel.js).
//
//   #prompt              the prompt <textarea>; #prompt-tokens shows its token count
//   #generate, #stop     start / stop a generation (Ctrl/Cmd+Enter generates, Esc stops: app.js)
//   #output              the prompt (span.prompt) and the generated text (span.gen, highlighted)
//   #stats               tokens, tokens/s, time to first token, stop reason, seed
//   #gen-warnings        the last generation's summary.warnings (e.g. the prompt was truncated)
//
// Test hook (window.__gpt2): lastSummary, lastError, generations (how many generations have
// ended: finished, stopped or failed).
import { plural } from './format.js';
import { $, clearError, isAbort, make, setState, setStatus, showError } from './page.js';

/** Why a generation ended, in words (summary.stopReason). */
const WHY = {
  max_tokens: 'reached the token limit',
  eot: 'the model ended the text',
  stop_sequence: 'hit a stop sequence',
  context_full: "the model's context is full",
  cancelled: 'stopped',
};

/**
 * Wires the Generate tab.
 * @param {object} app getModel(), isLoading(), options (web/options.js), big (web/bigmodel.js:
 *   the draft's options and stats), hook (the test hook), onBusy() (a generation starts or ends)
 * @returns {{ update: () => void, run: () => Promise<void>, stop: () => boolean,
 *   countTokens: () => void, readonly busy: boolean }}
 */
export function initGenerate(app) {
  const el = {
    prompt: $('prompt'), promptTokens: $('prompt-tokens'), generate: $('generate'), stop: $('stop'),
    output: $('output'), stats: $('stats'), warnings: $('gen-warnings'), draftSelect: $('draft-select'),
    draftTokens: $('draft-tokens'),
  };
  const { hook } = app;
  Object.assign(hook, { lastSummary: null, generations: 0 });
  let controller = null;
  let busy = false;

  async function generate() {
    const model = app.getModel();
    if (!model || busy || app.isLoading()) return;
    clearError();
    let options, draftOptions;
    try {
      options = app.options.read();
      draftOptions = app.big.options(() => app.options.readNumber(el.draftTokens));
    } catch (e) {
      showError('Check the sampling settings.', e.message);
      return;
    }
    const prompt = el.prompt.value;
    const mine = new AbortController();
    controller = mine;
    busy = true;
    setState('generating');
    app.onBusy();
    setStatus('Generating…');
    el.stats.textContent = '';
    showWarnings([]);

    const genText = document.createTextNode('');
    const genSpan = make('span', 'gen');
    genSpan.append(genText);
    const caret = make('span', 'caret');
    caret.setAttribute('aria-hidden', 'true');
    el.output.replaceChildren(make('span', 'prompt', prompt), genSpan, caret);

    let tokens = 0;
    const t0 = performance.now();
    let text = '';
    let pending = false;
    const paint = () => { pending = false; genText.data = text; keepScrolled(); };
    try {
      const gen = model.generate(prompt, { ...options, ...draftOptions, signal: mine.signal });
      for await (const piece of gen) {
        if (piece.token !== null && piece.token !== undefined) tokens++;
        if (piece.text) {
          text += piece.text;
          if (!pending) { pending = true; requestAnimationFrame(paint); }
        }
      }
      const summary = await gen.summary;
      hook.lastSummary = summary;
      text = summary.text ?? text;
      paint();
      showStats(summary, options.seed);
      showWarnings(summary.warnings || []);
      setStatus(`Done: ${plural(summary.tokens, 'token')} (${WHY[summary.stopReason] || summary.stopReason}).`);
    } catch (e) {
      paint();
      hook.lastError = e;
      if (isAbort(e)) {
        const secs = (performance.now() - t0) / 1000;
        setStatus(`Stopped after ${plural(tokens, 'token')}.`);
        el.stats.textContent = `${plural(tokens, 'token')} in ${secs.toFixed(1)} s · seed ${options.seed} · stopped`;
      } else {
        if (e && e.code === 'range') showError('The prompt is too long for this model.', e.message);
        else if (e && e.code === 'arg') showError('Check the sampling settings.', e.message);
        else showError('Generation failed.', e);
        setStatus('Generation failed.');
      }
    } finally {
      caret.remove();
      if (controller === mine) controller = null;
      busy = false;
      hook.generations++;
      setState(app.getModel() ? 'ready' : 'idle');
      app.onBusy();
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
    const draft = app.big.statsText(summary);
    if (draft) parts.push(draft);
    el.stats.textContent = parts.join(' · ');
  }

  /** Shows a generation's summary.warnings under the output (hidden when there are none). */
  function showWarnings(warnings) {
    el.warnings.hidden = warnings.length === 0;
    el.warnings.textContent = warnings.length ? `Note: ${warnings.join('; ')}.` : '';
  }

  // The prompt's token count, a moment after typing stops.
  let countTimer = 0;
  let countSeq = 0;
  function countTokens() {
    clearTimeout(countTimer);
    countTimer = setTimeout(async () => {
      const m = app.getModel();
      if (!m) { el.promptTokens.textContent = ''; return; }
      const seq = ++countSeq;
      try {
        const ids = await m.tokenize(el.prompt.value);
        if (seq !== countSeq || m !== app.getModel()) return;
        const n = ids.length;
        const over = n >= m.config.nCtx;
        el.promptTokens.textContent = `${plural(n, 'token')} of ${m.config.nCtx}${over ? ' — longer than the context: its start will be dropped' : ''}. `;
        el.promptTokens.classList.toggle('warn', over);
      } catch {
        if (seq === countSeq) el.promptTokens.textContent = '';
      }
    }, 250);
  }

  /** Stops the generation; returns whether one was running. */
  function stop() {
    if (controller) controller.abort();
    return busy;
  }

  el.generate.addEventListener('click', generate);
  el.stop.addEventListener('click', stop);
  el.prompt.addEventListener('input', countTokens);

  return {
    update() {
      const off = !app.getModel() || app.isLoading();
      el.generate.disabled = off || busy;
      el.stop.disabled = !busy;
      el.draftSelect.disabled = busy || app.isLoading(); // the draft is not changed under a generation
    },
    run: generate,
    stop,
    countTokens,
    get busy() { return busy; },
  };
}
