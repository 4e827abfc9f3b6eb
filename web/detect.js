// detect.js - the Detect tab: colours each token of a text by its rank under the model
// (GLTR's buckets), with a histogram, the perplexity, and each token's alternatives.
//
//   #detect-text, #analyze (Ctrl/Cmd+Enter in this tab: app.js)
//   #detect-tokens holds span.tok per token (class bucket-0..3 by rank: < 10, < 100, < 1000,
//     more; data-rank; tabindex=0); #detect-detail shows the focused or hovered token's
//     probability, rank and alternatives; #detect-hist li[data-bucket] with .count;
//     #detect-stats the perplexity; #detect-note says when only the last nCtx tokens were used
//
// Test hook (window.__gpt2): analyses (how many Analyze have ended), lastScore
// ({ result, truncated, totalTokens }), lastError.
import { percent, plural } from './format.js';
import { $, clearError, make, showError } from './page.js';

const BUCKETS = ['top 10', 'top 100', 'top 1000', 'beyond 1000'];
const HINT = 'Hover over or focus a token (Tab) to see its probability, rank and what the model expected instead.';

/** GLTR's bucket of a rank (0 = the model's first guess): < 10, < 100, < 1000, the rest. */
const bucketOf = (rank) => (rank < 10 ? 0 : rank < 100 ? 1 : rank < 1000 ? 2 : 3);

/** A token's text made visible: quotes around it, spaces and newlines shown. */
const showToken = (text) => `“${text.replace(/\n/g, '⏎')}”`;

/**
 * Scores the last nCtx tokens of a text (all of them when they fit the model's context);
 * also used by Check in the Write tab.
 * @param {any} m the RemoteModel
 * @param {number[]} ids the text's tokens
 * @param {number} topK alternatives per token
 * @returns {Promise<{ result: any, truncated: boolean, skipped: string }>} skipped: the text
 *   before the scored tokens ('' when nothing was left out)
 */
export async function scoreTail(m, ids, topK) {
  const nCtx = m.config.nCtx;
  const truncated = ids.length > nCtx;
  const result = await m.score(truncated ? ids.slice(-nCtx) : ids, { topK });
  const skipped = truncated ? await m.detokenize(ids.slice(0, -nCtx)) : '';
  return { result, truncated, skipped };
}

/**
 * Wires the Detect tab.
 * @param {object} app getModel(), isLoading(), hook (the test hook), onBusy()
 * @returns {{ update: () => void, run: () => Promise<void>, readonly busy: boolean }}
 */
export function initDetect(app) {
  const el = {
    text: $('detect-text'), analyze: $('analyze'), note: $('detect-note'), tokens: $('detect-tokens'),
    detail: $('detect-detail'), hist: $('detect-hist'), stats: $('detect-stats'),
  };
  const { hook } = app;
  Object.assign(hook, { analyses: 0, lastScore: null });
  let busy = false;
  let scored = null; // the tokens shown

  async function analyze() {
    const m = app.getModel();
    if (!m || busy || app.isLoading()) return;
    clearError();
    const text = el.text.value;
    if (!text.trim()) {
      showError('Nothing to analyze.', 'Type or paste some text first.');
      return;
    }
    busy = true;
    app.onBusy();
    el.stats.textContent = 'Analyzing…';
    try {
      // Everything runs in the worker: tokenizing, and scoring (one forward pass over the text).
      const ids = await m.tokenize(text);
      const nCtx = m.config.nCtx;
      if (ids.length < 2) throw new Error('The text must have at least two tokens.');
      const { result, truncated, skipped } = await scoreTail(m, ids, 5);
      if (m !== app.getModel()) return;
      el.note.hidden = !truncated;
      el.note.textContent = truncated
        ? `This text has ${ids.length} tokens, more than the model's context of ${nCtx}: only its last ${nCtx} tokens were analysed (the text before them is greyed out, and the first analysed token has no context).`
        : '';
      render(result, skipped);
      hook.lastScore = { result, truncated, totalTokens: ids.length };
    } catch (e) {
      hook.lastError = e;
      el.stats.textContent = '';
      showError('The text could not be analyzed.', e);
    } finally {
      busy = false;
      hook.analyses++;
      app.onBusy();
    }
  }

  /** Shows the scored tokens, the bucket histogram and the perplexity. */
  function render(result, skippedText) {
    const counts = [0, 0, 0, 0];
    const frag = document.createDocumentFragment();
    if (skippedText) frag.append(make('span', 'skipped', skippedText));
    result.tokens.forEach((t, i) => {
      const span = make('span', 'tok first', t.text);
      span.dataset.index = String(i);
      if (t.rank !== null) {
        const b = bucketOf(t.rank);
        counts[b]++;
        span.className = `tok bucket-${b}`;
        span.dataset.rank = String(t.rank);
      }
      // Tokens holding only part of a character have no text of their own: nothing to focus.
      if (t.text !== '') span.tabIndex = 0;
      frag.append(span);
    });
    el.tokens.replaceChildren(frag);
    scored = result.tokens;

    const n = counts.reduce((a, b) => a + b, 0);
    el.hist.replaceChildren(...BUCKETS.map((label, b) => {
      const li = document.createElement('li');
      li.dataset.bucket = String(b);
      const bar = make('span', 'bar');
      const fill = make('span', `fill bucket-${b}`);
      fill.style.width = `${n ? (counts[b] / n) * 100 : 0}%`;
      bar.append(fill);
      li.append(make('span', 'label', label), bar, make('span', 'count', String(counts[b])));
      li.setAttribute('aria-label', `${label}: ${plural(counts[b], 'token')}`);
      return li;
    }));
    const ppl = result.perplexity;
    el.stats.textContent = `Perplexity ${ppl === null ? '–' : ppl.toFixed(1)} · ${plural(n, 'token')} scored` +
      ` (the first token has no context) · ${n ? Math.round((counts[0] / n) * 100) : 0}% in the top 10`;
    el.detail.replaceChildren(make('p', 'help', HINT));
  }

  /** Fills the side panel with one token's facts. */
  function showDetail(span) {
    const t = scored && scored[Number(span.dataset.index)];
    if (!t) return;
    for (const a of el.tokens.querySelectorAll('.tok.active')) a.classList.remove('active');
    span.classList.add('active');
    const head = make('p', 'tok-head');
    head.append(make('strong', '', showToken(t.text)));
    if (t.rank === null) {
      el.detail.replaceChildren(head, make('p', 'help', 'The first token: the model has nothing to predict it from.'));
      return;
    }
    const facts = make('p', 'tok-facts',
      `Probability ${percent(t.logprob)} · rank ${t.rank + 1} (${BUCKETS[bucketOf(t.rank)]}; 1 = the model's first guess)`);
    const list = make('ol', 'alts');
    for (const a of t.alternatives) {
      const li = make('li', a.id === t.id ? 'actual' : '');
      li.append(make('span', 'alt-text', showToken(a.text)), ' ', make('span', 'alt-p', percent(a.logprob)));
      list.append(li);
    }
    el.detail.replaceChildren(head, facts, make('p', 'help', 'The model expected:'), list);
  }

  el.analyze.addEventListener('click', analyze);
  for (const type of ['focusin', 'mouseover']) {
    el.tokens.addEventListener(type, (e) => {
      const span = e.target.closest && e.target.closest('.tok');
      if (span) showDetail(span);
    });
  }

  return {
    update() { el.analyze.disabled = !app.getModel() || busy || app.isLoading(); },
    run: analyze,
    get busy() { return busy; },
  };
}
