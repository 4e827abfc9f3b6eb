// write.js - the Write tab: a plain textarea with the model beside the text.
//
//   Suggestions: after a pause in typing (PAUSE_MS) at the end of the text, the model proposes
//     a few words, shown as faded "ghost" text after the caret (drawn by #write-mirror, a copy of
//     the text laid out like the textarea behind it) and in words in #write-suggestion. Tab
//     accepts, Ctrl+Right one word, Esc dismisses, typing (or moving the caret) cancels.
//     At the end of a line inside the text the suggestion is shown only in #write-suggestion.
//   Continue: writes one sentence at the caret (the Generate tab's sampling and banned words).
//   Alternatives: the model's top next words at the caret with their probabilities (#write-alts);
//     choosing one inserts it.
//   Check: marks the least expected words of the text in the mirror (the Detect view, inline),
//     and lists them in #write-note.
//   The draft is kept in localStorage (DRAFT_KEY) as you type and restored on load; Export .txt
//     saves it as a file. Nothing is sent anywhere: the model runs in the page's worker.
//
// Suggestions and Continue use one worker session (RemoteSession): before each call the session
// is brought to the tokens of the text before the caret by rewinding to the longest common
// prefix and appending the rest, so only new text is computed. A text longer than the model's
// context is worked on through a window of its last tokens: the window keeps its start while
// the text grows, and when it is full it slides so that half of it is free (one recomputation
// per half window, not one per keystroke).
//
// Test hook: hook.write = { suggestions, lastSuggestion: { text, computeMs, totalMs },
//   computed, checks, alternatives, continues, savedAt }
//   computeMs: from the end of the pause (the debounce timer firing) to the ghost text painted;
//   totalMs: from the last keystroke (includes PAUSE_MS); computed: tokens appended to the
//   session so far (what the model had to compute for the context).
import { scoreTail } from './detect.js';
import { percent, plural } from './format.js';
import { $, clearError, make, saveFile, showError } from './page.js';

const DRAFT_KEY = 'gpt2-wasm.write.draft';
const PAUSE_MS = 300;
const SUGGEST_TOKENS = 6;
const CONTINUE_TOKENS = 40;
const SENTENCE_END = /[.!?]["'”’)\]]*(?=\s|$)/;

/**
 * Wires the Write tab.
 * @param {object} app what the page shares: getModel() (the loaded RemoteModel or null),
 *   isLoading(), options (web/options.js: read() the sampling settings, throws an Error with
 *   words; bannedWords() the "Never use these words" list, for suggestions: greedy, no other
 *   setting), hook (the test hook), onBusy() (called when the tab starts or ends a tool, so
 *   the page can update its buttons)
 * @returns {{ update: () => void, stop: () => boolean, readonly busy: boolean }}
 */
export function initWrite(app) {
  const el = {
    text: $('write-text'), mirror: $('write-mirror'), suggestion: $('write-suggestion'),
    cont: $('write-continue'), alts: $('write-alternatives'), check: $('write-check'), stop: $('write-stop'),
    exportTxt: $('write-export'), suggest: $('write-suggest'), altList: $('write-alts'), note: $('write-note'),
    status: $('write-status'), panel: $('panel-write'),
  };
  const hook = { suggestions: 0, lastSuggestion: null, computed: 0, checks: 0, alternatives: 0, continues: 0, savedAt: null };
  app.hook.write = hook;

  let session = null;      // the RemoteSession
  let sessionModel = null; // the model it belongs to
  let held = [];           // the token ids the session holds
  let windowStart = 0;     // index in the tokens of the text of held[0]
  let queue = Promise.resolve(); // model calls, one at a time
  let seq = 0;             // bumped to cancel a pending suggestion
  let timer = 0;
  let lastInputAt = 0;
  let suggestion = null;   // { text, caret, value }
  let dismissed = false;   // Esc: no suggestion until the text changes
  let marks = null;        // Check: { value, spans: [{ start, end, worst }] }
  let tool = null;         // 'continue' | 'alternatives' | 'check' while one runs
  let stopRequested = false;
  let accepting = false;

  // ---------------------------------------------------------------------------------------
  // The session: brought to a text's tokens, only the difference computed

  /** Runs fn after the previous model call has ended. */
  function run(fn) {
    const p = queue.then(fn);
    queue = p.catch(() => {});
    return p;
  }

  async function ensureSession(m) {
    if (session && sessionModel === m && !session.disposed) return session;
    if (session) session.dispose().catch(() => {});
    session = await m.session();
    sessionModel = m;
    held = [];
    windowStart = 0;
    return session;
  }

  /**
   * Makes the session hold the tokens of text (the window of its last ones when it is longer
   * than the context minus `reserve` tokens); returns the session.
   */
  async function prepare(m, text, reserve) {
    const s = await ensureSession(m);
    const ids = await m.tokenize(text);
    const limit = m.config.nCtx - reserve;
    let start = windowStart;
    if (ids.length <= limit) start = 0;
    else if (start > ids.length || ids.length - start > limit) start = ids.length - Math.ceil(limit / 2);
    const want = ids.slice(start);
    let p = 0;
    while (p < held.length && p < want.length && held[p] === want[p]) p++;
    if (p < held.length) await s.rewind(p);
    if (p < want.length) await s.append(want.slice(p));
    hook.computed += want.length - p;
    held = want;
    windowStart = start;
    return s;
  }

  /** Generates from the session; each piece goes to onPiece, which may return true to stop. */
  async function generate(s, options, onPiece) {
    const gen = s.generate({ ...options, contextPolicy: 'stop' });
    for await (const piece of gen) {
      if (piece.token !== null) held.push(piece.token);
      if (onPiece(piece)) break;
    }
    const summary = await gen.summary;
    // A stopped generation may have made a token more than was taken, and a stop sequence's
    // tokens are not returned as pieces: then ask the session what it holds.
    if (s.lastPosition !== held.length) held = await s.tokens;
    return summary;
  }

  // ---------------------------------------------------------------------------------------
  // Suggestions

  const suggestOn = () => el.suggest.checked;

  /** The text the model continues: before the caret, without trailing spaces (re-added by the caller). */
  function contextAt(value, caret) {
    const before = value.slice(0, caret);
    const trailingSpace = /[ \t]$/.test(before);
    return { before, ctx: trailingSpace ? before.replace(/[ \t]+$/, '') : before, trailingSpace };
  }

  function schedule() {
    clearTimeout(timer);
    seq++;
    if (!suggestOn() || dismissed) return;
    timer = setTimeout(() => suggest(seq, performance.now()), PAUSE_MS);
  }

  async function suggest(mySeq, firedAt) {
    const m = app.getModel();
    if (!m || app.isLoading() || tool || el.panel.hidden) return;
    const ta = el.text;
    if (ta.selectionStart !== ta.selectionEnd) return;
    const value = ta.value;
    const caret = ta.selectionStart;
    const after = value.slice(caret);
    if (after !== '' && !after.startsWith('\n')) return; // only where text would go on
    const { ctx, trailingSpace } = contextAt(value, caret);
    if (!ctx.trim()) return;
    let text = '';
    let summary;
    try {
      summary = await run(async () => {
        if (mySeq !== seq) return null;
        const s = await prepare(m, ctx, SUGGEST_TOKENS);
        if (mySeq !== seq) return null;
        return generate(s, { maxTokens: SUGGEST_TOKENS, temperature: 0, stop: ['\n'], bannedWords: app.options.bannedWords() }, (piece) => {
          text += piece.text;
          return mySeq !== seq; // typing went on: stop computing
        });
      });
    } catch {
      return; // a model being replaced, a disposed session: no suggestion this time
    }
    if (!summary || mySeq !== seq || ta.value !== value || ta.selectionStart !== caret) return;
    if (trailingSpace) text = text.replace(/^[ \t]+/, '');
    // A suggestion cut by the token limit may end inside a word: keep whole words.
    if (summary.stopReason === 'max_tokens') {
      const cut = text.replace(/\s*\S+$/, '');
      if (cut.trim()) text = cut;
    }
    if (!text.trim()) return;
    suggestion = { text, caret, value };
    render();
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    const now = performance.now();
    hook.suggestions++;
    hook.lastSuggestion = { text, computeMs: now - firedAt, totalMs: now - lastInputAt };
    el.status.textContent = `Suggestion in ${Math.round(now - firedAt)} ms after the pause.`;
  }

  function clearSuggestion() {
    if (!suggestion) return;
    suggestion = null;
    render();
  }

  /** Accepts the whole suggestion, or its next word. */
  function accept(oneWord) {
    const s = suggestion;
    if (!s) return;
    const part = oneWord ? s.text.match(/^\s*\S+/)[0] : s.text;
    const rest = s.text.slice(part.length);
    accepting = true;
    insertAtCaret(part);
    accepting = false;
    if (rest.trim()) {
      suggestion = { text: rest, caret: el.text.selectionStart, value: el.text.value };
      seq++; // no new suggestion while this one is being accepted
      clearTimeout(timer);
    } else {
      suggestion = null;
      schedule();
    }
    render();
    saveSoon();
  }

  function insertAtCaret(text) {
    const ta = el.text;
    ta.focus();
    // execCommand keeps the browser's undo history; setRangeText where it is not supported.
    if (!document.execCommand || !document.execCommand('insertText', false, text)) {
      ta.setRangeText(text, ta.selectionStart, ta.selectionEnd, 'end');
      ta.dispatchEvent(new Event('input', { bubbles: true }));
    }
  }

  // ---------------------------------------------------------------------------------------
  // The mirror: the same text, laid out like the textarea, showing the ghost and the marks

  function render() {
    const ta = el.text;
    const value = ta.value;
    const frag = document.createDocumentFragment();
    const s = suggestion;
    const inline = s && s.value === value && s.caret === value.length;
    if (marks && marks.value === value) {
      let at = 0;
      for (const span of marks.spans) {
        frag.append(value.slice(at, span.start));
        frag.append(make('mark', span.worst ? 'worst' : '', value.slice(span.start, span.end)));
        at = span.end;
      }
      frag.append(value.slice(at));
    } else {
      marks = null;
      frag.append(value);
    }
    if (inline) frag.append(make('span', 'ghost', s.text));
    frag.append('\u200b'); // a final empty line is laid out as in the textarea
    el.mirror.replaceChildren(frag);
    el.mirror.scrollTop = ta.scrollTop;
    if (s) {
      el.suggestion.replaceChildren('Suggestion: ', make('span', 'ghost-text', s.text), ' — Tab to accept, Ctrl+→ one word, Esc to dismiss.');
    } else {
      el.suggestion.textContent = '';
    }
  }

  // ---------------------------------------------------------------------------------------
  // Tools: Continue, Alternatives, Check

  async function runTool(name, work) {
    const m = app.getModel();
    if (!m || tool || app.isLoading()) return;
    clearError();
    seq++;
    clearTimeout(timer);
    clearSuggestion();
    tool = name;
    stopRequested = false;
    update();
    app.onBusy();
    try {
      await run(() => work(m));
    } catch (e) {
      showError(`${name[0].toUpperCase()}${name.slice(1)} failed.`, e);
    } finally {
      tool = null;
      update();
      app.onBusy();
    }
  }

  function continueText() {
    let options;
    try {
      options = app.options.read();
    } catch (e) {
      showError('Check the sampling settings (Generate tab).', e.message);
      return;
    }
    return runTool('continue', async (m) => {
      const ta = el.text;
      const caret = ta.selectionEnd;
      ta.setSelectionRange(caret, caret);
      const { ctx, trailingSpace } = contextAt(ta.value, caret);
      const s = await prepare(m, ctx.trim() ? ctx : '\n', CONTINUE_TOKENS);
      let first = true;
      let written = '';
      el.status.textContent = 'Writing…';
      const summary = await generate(s, { ...options, maxTokens: CONTINUE_TOKENS }, (piece) => {
        let t = piece.text;
        if (first && t) {
          if (trailingSpace || !ctx.trim()) t = t.replace(/^[ \t]+/, '');
          first = false;
        }
        const end = (written + t).match(SENTENCE_END);
        let done = stopRequested;
        if (end && written.length + t.length > 0) {
          const cut = end.index + end[0].length - written.length;
          if (cut >= 0 && cut <= t.length && (written + t).slice(0, end.index).trim().split(/\s+/).length >= 2) {
            t = t.slice(0, cut);
            done = true;
          }
        }
        if (t) insertAtCaret(t);
        written += t;
        return done;
      });
      hook.continues++;
      const n = summary.tokens;
      el.status.textContent = stopRequested ? `Stopped after ${plural(n, 'token')}.`
        : `Continued with ${plural(n, 'token')}` + (summary.timings && summary.timings.tokensPerSecond ? ` · ${summary.timings.tokensPerSecond.toFixed(0)} tokens/s.` : '.');
      saveSoon();
    });
  }

  function alternatives() {
    return runTool('alternatives', async (m) => {
      const ta = el.text;
      const caret = ta.selectionEnd;
      const { ctx, trailingSpace } = contextAt(ta.value, caret);
      if (!ctx.trim()) {
        el.altList.hidden = false;
        el.altList.replaceChildren(make('span', 'help', 'Write something first: the alternatives are the words the model expects next.'));
        return;
      }
      const ids = await m.tokenize(ctx);
      // Score the text followed by one more token: that token's alternatives are the model's
      // guesses for the position after the text.
      const scored = await m.score([...ids.slice(-(m.config.nCtx - 1)), m.eotId], { topK: 8 });
      const last = scored.tokens[scored.tokens.length - 1];
      hook.alternatives++;
      el.altList.hidden = false;
      el.altList.replaceChildren(make('span', 'help', 'Next word:'), ...last.alternatives.filter((a) => a.text.trim() !== '' || a.text === '\n').map((a) => {
        const b = make('button', 'alt');
        b.type = 'button';
        const word = trailingSpace ? a.text.replace(/^ /, '') : a.text;
        b.dataset.text = word;
        b.append(make('span', '', word.replace(/\n/g, '⏎')), make('span', 'alt-p', percent(a.logprob)));
        b.setAttribute('aria-label', `${word.trim() || 'new line'}, ${percent(a.logprob)}`);
        return b;
      }));
      el.status.textContent = `The model's ${plural(last.alternatives.length, 'guess', 'guesses')} for the next word at the caret.`;
    });
  }

  function check() {
    return runTool('check', async (m) => {
      const value = el.text.value;
      const ids = await m.tokenize(value);
      if (ids.length < 2) {
        el.note.hidden = false;
        el.note.textContent = 'Write a little more first: Check needs at least two tokens.';
        return;
      }
      const nCtx = m.config.nCtx;
      const { result, truncated, skipped } = await scoreTail(m, ids, 3);
      if (el.text.value !== value) return; // edited meanwhile
      // Where each token is in the text (the scored tokens join back to the text).
      let at = skipped.length;
      const spans = [];
      for (const t of result.tokens) {
        const start = at;
        at += t.text.length;
        if (t.rank === null || !t.text.trim()) continue;
        spans.push({ start, end: at, rank: t.rank, logprob: t.logprob, text: t.text });
      }
      // The least expected: the lowest tenth by probability (at least one), ranked 10th or worse.
      const n = Math.max(1, Math.round(spans.length / 10));
      const worst = [...spans].sort((a, b) => a.logprob - b.logprob).slice(0, n).filter((s) => s.rank >= 10);
      worst.sort((a, b) => a.start - b.start);
      marks = { value, spans: worst.map((s) => ({ start: s.start + (s.text.length - s.text.trimStart().length), end: s.end, worst: s.rank >= 1000 })) };
      hook.checks++;
      render();
      el.note.hidden = false;
      el.note.textContent = worst.length
        ? `Least expected (marked): ${worst.map((s) => `“${s.text.trim()}” (${percent(s.logprob)}, rank ${s.rank + 1})`).join(', ')}.` +
          (truncated ? ` Only the last ${nCtx} tokens were checked.` : '') + ' The marks go when you edit.'
        : 'Nothing stands out: every word is among the model\'s first guesses.';
    });
  }

  // ---------------------------------------------------------------------------------------
  // The draft: saved in this browser as you type, restored on load, exported as .txt

  let saveTimer = 0;
  function saveSoon() {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(save, 300);
  }

  function save() {
    clearTimeout(saveTimer);
    try {
      localStorage.setItem(DRAFT_KEY, JSON.stringify({ text: el.text.value, caret: el.text.selectionEnd, savedAt: Date.now() }));
      hook.savedAt = Date.now();
      if (!tool && !suggestion) el.status.textContent = `Draft saved in this browser at ${new Date().toLocaleTimeString()}.`;
    } catch (e) {
      el.status.textContent = `The draft cannot be saved in this browser (${e.name || e.message}).`;
    }
  }

  function restore() {
    try {
      const d = JSON.parse(localStorage.getItem(DRAFT_KEY) || 'null');
      if (d && typeof d.text === 'string') {
        el.text.value = d.text;
        const c = Math.min(Number(d.caret) || d.text.length, d.text.length);
        el.text.setSelectionRange(c, c);
        el.status.textContent = `Draft restored (saved ${new Date(d.savedAt).toLocaleString()}).`;
      }
    } catch { /* no storage, or not JSON: start empty */ }
    render();
  }

  function exportTxt() {
    saveFile(new Blob([el.text.value], { type: 'text/plain;charset=utf-8' }), `draft-${new Date().toISOString().slice(0, 10)}.txt`);
  }

  // ---------------------------------------------------------------------------------------
  // Wiring

  function update() {
    const off = !app.getModel() || app.isLoading() || !!tool;
    el.cont.disabled = off;
    el.alts.disabled = off;
    el.check.disabled = off;
    el.stop.disabled = tool !== 'continue';
  }

  el.text.addEventListener('input', () => {
    lastInputAt = performance.now();
    if (!accepting) {
      suggestion = null;
      dismissed = false;
      el.altList.hidden = true;
      if (marks) { marks = null; el.note.hidden = true; }
      render();
      schedule();
    }
    saveSoon();
  });
  el.text.addEventListener('scroll', () => { el.mirror.scrollTop = el.text.scrollTop; });
  el.text.addEventListener('keydown', (e) => {
    if (e.isComposing) return;
    if (suggestion && e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      accept(false);
    } else if (suggestion && e.key === 'ArrowRight' && (e.ctrlKey || e.altKey) && !e.shiftKey) {
      e.preventDefault();
      accept(true);
    } else if (e.key === 'Escape' && (suggestion || tool === 'continue')) {
      e.preventDefault();
      e.stopPropagation();
      if (tool === 'continue') stopRequested = true;
      dismissed = true;
      seq++;
      clearTimeout(timer);
      clearSuggestion();
    }
  });
  document.addEventListener('selectionchange', () => {
    if (!suggestion || document.activeElement !== el.text || accepting) return;
    if (el.text.selectionStart !== suggestion.caret || el.text.selectionEnd !== suggestion.caret) clearSuggestion();
  });
  el.text.addEventListener('blur', () => { seq++; clearTimeout(timer); clearSuggestion(); save(); });
  el.text.addEventListener('focus', schedule);
  el.suggest.addEventListener('change', () => { if (!suggestOn()) { seq++; clearSuggestion(); } });
  el.cont.addEventListener('click', continueText);
  el.alts.addEventListener('click', alternatives);
  el.check.addEventListener('click', check);
  el.stop.addEventListener('click', () => { stopRequested = true; });
  el.exportTxt.addEventListener('click', exportTxt);
  el.altList.addEventListener('click', (e) => {
    const b = e.target.closest && e.target.closest('button.alt');
    if (b) { insertAtCaret(b.dataset.text); el.altList.hidden = true; }
  });
  addEventListener('pagehide', save);
  restore();
  update();

  return {
    update,
    /** Stops Continue; returns whether it was running. */
    stop() {
      if (tool !== 'continue') return false;
      stopRequested = true;
      return true;
    },
    get busy() { return tool !== null; },
  };
}
