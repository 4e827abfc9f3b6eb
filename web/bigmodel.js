// bigmodel.js - the demo page's help with big models (issue 17):
//   * before a download, #model-plan says how big it is, which precision the load will use and
//     the memory that takes (api.planInWorker: the core's own estimate and 'auto' choice, read
//     from config.json and model.safetensors' header; nothing is typed here by hand), e.g.
//     "Download 6.4 GB. f32 needs 6.9 GB, more than the 4.3 GB WebAssembly can use here:
//     loads as f16, 3.8 GB of memory."
//   * "Speed up with a draft model" (#draft-select, #draft-tokens, #draft-status): a smaller
//     model loaded into the main model's worker (loadInWorker(src, { into: model })) proposes
//     tokens that the main model checks in one pass (speculative decoding; the text is the
//     same). Choices: off, the same model in q8_0 (self-draft), the embedded model, distilgpt2,
//     gpt2 (all q8_0; a draft needs the same vocabulary: every GPT-2 and the embedded model
//     have 50257 tokens).
//
// Test hook (window.__gpt2): plans (count), lastPlan, draft (the RemoteModel or null),
// draftLoads (count of draft loads ended), draftError.
import { formatBytes } from './format.js';
import { $ } from './page.js';

/** One sentence about a plan: download size, precision and memory, and why. */
function describePlan(plan) {
  const download = plan.downloadBytes === undefined ? '' : `Download ${formatBytes(plan.downloadBytes)}. `;
  if (plan.precision === null) return `${download}Does not fit in WebAssembly's memory: ${plan.reason}.`;
  if (plan.reason.includes(', because ')) {
    return `${download}${plan.stored} needs ${formatBytes(plan.bytes[plan.stored])}, more than the ` +
      `${formatBytes(plan.budget)} WebAssembly can use here: loads as ${plan.precision}, ${formatBytes(plan.need)} of memory.`;
  }
  const how = plan.reason.startsWith('auto:') ? 'as stored' : 'as asked';
  return `${download}Loads as ${plan.precision} (${how}), ${formatBytes(plan.need)} of memory ` +
    `(of ${formatBytes(plan.budget)} WebAssembly can use).`;
}

/**
 * Wires #model-plan and the draft controls.
 * @param {{ getApi: () => any, getModel: () => any, getLoaded: () => ({ source: any } | null),
 *   sourceOf: (select: string) => string | undefined | Promise<string | undefined>, hook: any }} ctx
 *   sourceOf: the folder URL of a #model-select value, or a promise of it (undefined when it
 *   has none to plan)
 */
export function initBigModels(ctx) {
  const el = {
    select: $('model-select'), precision: $('precision'), plan: $('model-plan'),
    draftSelect: $('draft-select'), draftTokens: $('draft-tokens'), draftStatus: $('draft-status'),
  };
  const { hook } = ctx;
  Object.assign(hook, { plans: 0, lastPlan: null, draft: null, draftLoads: 0, draftError: null });
  let planSeq = 0;
  let planController = null;

  async function showPlan() {
    const seq = ++planSeq;
    if (planController) planController.abort();
    const api = ctx.getApi();
    let source;
    try {
      source = await ctx.sourceOf(el.select.value);
    } catch {
      source = undefined; // a URL field that is not a URL yet: Load says what is wrong
    }
    if (seq !== planSeq) return;
    if (!api || !source) {
      el.plan.hidden = true;
      return;
    }
    const controller = new AbortController();
    planController = controller;
    el.plan.hidden = false;
    el.plan.textContent = 'Checking the download size and the memory it needs…';
    try {
      const plan = await api.planInWorker(source, { precision: el.precision.value, signal: controller.signal });
      if (seq !== planSeq) return;
      hook.lastPlan = plan;
      el.plan.textContent = describePlan(plan);
    } catch (e) {
      if (seq !== planSeq) return;
      hook.lastPlan = null;
      el.plan.textContent = `Could not check the size before downloading (${e.message}).`;
    } finally {
      if (seq === planSeq) {
        planController = null;
        hook.plans++;
      }
    }
  }

  // The draft: loaded into the main model's worker; gone with it.
  let draft = null;      // RemoteModel
  let draftFor = null;   // the main model it was loaded into
  let draftSeq = 0;

  function setDraftStatus(text) { el.draftStatus.textContent = text; }

  async function loadDraft() {
    const seq = ++draftSeq;
    const m = ctx.getModel();
    const choice = el.draftSelect.value;
    if (draft && draftFor === m && !m.disposed) draft.dispose().catch(() => {});
    draft = null;
    draftFor = null;
    hook.draft = null;
    hook.draftError = null;
    if (choice === 'off') {
      setDraftStatus('');
      return;
    }
    if (!m) {
      setDraftStatus('Loads with the next model.');
      return;
    }
    const loaded = ctx.getLoaded();
    // 'self': the main model's source; 'embedded': the worker's own copy; 'hf:owner/name': that repository
    const source = choice === 'self' ? loaded && loaded.source : choice === 'embedded' ? null : ctx.sourceOf(choice);
    if (choice === 'self' && (!loaded || typeof loaded.source !== 'string')) {
      setDraftStatus('A self-draft needs a model loaded from a URL (or the embedded one).');
      hook.draftLoads++;
      return;
    }
    setDraftStatus('Loading the draft model…');
    try {
      const d = await ctx.getApi().loadInWorker(source, { into: m, precision: 'q8_0' });
      if (seq !== draftSeq || ctx.getModel() !== m) {
        d.dispose().catch(() => {});
        return;
      }
      draft = d;
      draftFor = m;
      hook.draft = d;
      setDraftStatus(`Draft ready: ${el.draftSelect.selectedOptions[0].textContent.trim()}, ` +
        `${d.info.precision}, ${formatBytes(d.info.weightsBytes)}. Used by every generation; greedy text is the same as without it.`);
    } catch (e) {
      if (seq !== draftSeq) return;
      hook.draftError = e;
      setDraftStatus(`The draft model did not load: ${e.message}`);
    } finally {
      if (seq === draftSeq) hook.draftLoads++;
    }
  }

  el.select.addEventListener('change', showPlan);
  $('model-url').addEventListener('change', showPlan);
  el.precision.addEventListener('change', showPlan);
  el.draftSelect.addEventListener('change', loadDraft);

  return {
    showPlan,
    /** A new main model is ready: the old draft went with the old worker; load the chosen one into this. */
    onModel() {
      el.plan.hidden = true;
      return loadDraft();
    },
    /**
     * Generation options for the draft ({} without one).
     * @param {() => number} readTokens reads #draft-tokens (throws an Error with words when it is not 1..16)
     */
    options(readTokens) {
      const m = ctx.getModel();
      if (!draft || draftFor !== m || draft.disposed) return {};
      return { draft, draftTokens: readTokens() };
    },
    /** The stats line's words for summary.speculative ('' without a draft). */
    statsText(summary) {
      const s = summary.speculative;
      if (!s) return '';
      const rate = s.rate === null || s.rate === undefined ? '' : ` (${Math.round(s.rate * 100)}%)`;
      return `draft accepted ${s.accepted} of ${s.proposed} proposed tokens${rate}`;
    },
  };
}
