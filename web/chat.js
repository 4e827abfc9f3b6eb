// chat.js - the Chat tab: one session in the worker. Turns are plain lines, the simplest format
// a small model trained on prose can follow: "You: <message>\nReply:" is appended, and the model
// continues until the end of the line (stop sequence "\n") or the reply token limit. A reply
// that ended without a newline gets one before the next "You:" line. When the conversation
// outgrows the context, a new session holds the most recent turns that fit (slide()).
//
//   #chat-log (div.msg.you / div.msg.reply; .forgotten once the model no longer sees them),
//   #chat-input, #chat-send, #chat-stop (or Esc), #chat-regenerate, #chat-reset,
//   #chat-max-tokens, #chat-status. The sampling settings and banned words: web/options.js.
//
// Test hook (window.__gpt2): chatSession (the RemoteSession), chatTurns (how many replies, Send
// or Regenerate, have ended), lastChatSummary, lastError.
import { plural } from './format.js';
import { $, clearError, make, showError } from './page.js';

const turnText = (t) => `You: ${t.you}\nReply:${t.reply}\n`;

/**
 * Wires the Chat tab.
 * @param {object} app getModel(), isLoading(), options (web/options.js), hook (the test hook), onBusy()
 * @returns {{ update: () => void, run: () => Promise<void>, stop: () => boolean, readonly busy: boolean }}
 */
export function initChat(app) {
  const el = {
    log: $('chat-log'), input: $('chat-input'), send: $('chat-send'), regenerate: $('chat-regenerate'),
    reset: $('chat-reset'), maxTokens: $('chat-max-tokens'), status: $('chat-status'), stop: $('chat-stop'),
  };
  const { hook } = app;
  Object.assign(hook, { chatSession: null, chatTurns: 0, lastChatSummary: null });
  let session = null;       // the RemoteSession
  let sessionModel = null;  // the model it belongs to
  let busy = false;
  let stopRequested = false;
  let replyStart = null;    // the session position before the last reply (Regenerate rewinds there)
  let needsNewline = false;
  let lastReply = null;     // the last reply's element
  let turns = [];           // { you, reply, els } of the conversation shown, oldest first
  let regenerations = 0;    // Regenerates of the last reply (they vary a fixed seed)

  function addMessage(who, text) {
    const div = make('div', `msg ${who}`);
    const body = make('span', 'text', text);
    div.append(make('span', 'who', who === 'you' ? 'You' : 'Reply'), body);
    el.log.append(div);
    el.log.scrollTop = el.log.scrollHeight;
    return body;
  }

  async function newSession(model) {
    if (session) session.dispose().catch(() => {});
    session = await model.session();
    sessionModel = model;
    replyStart = null;
    needsNewline = false;
    hook.chatSession = session;
  }

  /**
   * Runs one chat action (a new turn or a regenerated reply) with the settings read and checked
   * first, the buttons disabled meanwhile, and any failure shown on the page.
   * @param {(options: object) => Promise<void>} work
   */
  async function runTurn(work) {
    let options;
    try {
      // the Generate tab's sampling and banned words
      options = { ...app.options.read(), maxTokens: app.options.readNumber(el.maxTokens), stop: ['\n'], contextPolicy: 'stop' };
    } catch (e) {
      showError('Check the settings.', e.message);
      return;
    }
    busy = true;
    stopRequested = false;
    app.onBusy();
    try {
      await work(options);
    } catch (e) {
      hook.lastError = e;
      showError('The chat failed.', e);
    } finally {
      busy = false;
      hook.chatTurns++;
      app.onBusy();
    }
  }

  /**
   * The conversation no longer fits the context with the next turn and its reply: a new session
   * holding the most recent turns that fit, then the new one. The log keeps every turn; the ones
   * the model no longer sees are greyed, under a line saying so.
   * @returns {Promise<boolean>} false when even the new turn alone does not fit
   */
  async function slide(model, turn, replyTokens) {
    const nCtx = model.config.nCtx;
    const room = nCtx - replyTokens - (await model.tokenize(turn)).length;
    if (room < 0) return false;
    let kept = 0;
    let used = 0;
    for (let i = turns.length - 1; i >= 0; i--) {
      const n = (await model.tokenize(turnText(turns[i]))).length;
      if (used + n > room) break;
      used += n;
      kept++;
    }
    await newSession(model);
    const keep = turns.slice(turns.length - kept);
    await session.append(keep.map(turnText).join('') + turn);
    const forgotten = turns.slice(0, turns.length - kept);
    for (const t of forgotten) for (const e of t.els) e.classList.add('forgotten');
    el.log.querySelectorAll('.slid-note').forEach((n) => n.remove());
    if (forgotten.length) {
      forgotten[forgotten.length - 1].els[1].after(make('p', 'slid-note',
        `The model no longer sees the ${plural(forgotten.length, 'turn')} above (its context holds ${nCtx} tokens).`));
    }
    el.status.textContent = `The conversation outgrew the model's context (${nCtx} tokens): it now sees ` +
      `${kept === 1 ? 'the last turn and ' : kept ? `the last ${kept} turns and ` : ''}this one; the earlier turns stay in the log, greyed.`;
    return true;
  }

  async function send() {
    const model = app.getModel();
    if (!model || busy || app.isLoading()) return;
    clearError();
    const message = el.input.value.replace(/\s+/g, ' ').trim();
    if (!message) { el.input.focus(); return; }
    await runTurn(async (options) => {
      if (!session || sessionModel !== model || session.disposed) {
        el.log.replaceChildren();
        turns = [];
        await newSession(model);
      }
      const turn = `You: ${message}\nReply:`;
      const text = (needsNewline ? '\n' : '') + turn;
      const need = (await model.tokenize(text)).length + options.maxTokens;
      let slid = false;
      if (session.lastPosition + need > model.config.nCtx) {
        if (!(await slide(model, turn, options.maxTokens))) {
          throw new Error(`This message and a reply of ${plural(options.maxTokens, 'token')} do not fit the model's context of ${model.config.nCtx} tokens: shorten it or lower Reply tokens.`);
        }
        slid = true;
      } else {
        await session.append(text);
      }
      const you = addMessage('you', message);
      el.input.value = '';
      replyStart = session.lastPosition;
      lastReply = addMessage('reply', '');
      regenerations = 0;
      const entry = { you: message, reply: '', els: [you.parentElement, lastReply.parentElement] };
      turns.push(entry);
      entry.reply = await reply(options, slid);
    });
  }

  /** Streams a reply from the end of the session into lastReply; returns its text. */
  async function reply(options, keepStatus = false, note = '') {
    const s = session;
    const target = lastReply;
    target.textContent = '';
    target.parentElement.classList.remove('empty');
    target.parentElement.classList.add('streaming');
    el.log.setAttribute('aria-busy', 'true'); // screen readers hear the reply once, when it is complete
    const before = keepStatus ? `${el.status.textContent} ` : '';
    el.status.textContent = `${before}Replying…`;
    let text = '';
    try {
      const gen = s.generate(options);
      for await (const piece of gen) {
        text += piece.text;
        target.textContent = text;
        if (stopRequested) break;
      }
      const summary = await gen.summary;
      hook.lastChatSummary = summary;
      if (summary.stopReason === 'cancelled') {
        // The worker may have made a token more than was shown: the session ends where the reply shown does.
        await s.rewind(replyStart + summary.tokens);
      }
      needsNewline = summary.stopReason !== 'stop_sequence';
      target.textContent = summary.text.trim() ? summary.text : '';
      if (!summary.text.trim()) target.parentElement.classList.add('empty');
      el.status.textContent = before + (summary.stopReason === 'cancelled' ? `Stopped after ${plural(summary.tokens, 'token')}. ` : '') +
        `${plural(summary.tokens, 'token')} · ${s.lastPosition} of ${sessionModel.config.nCtx} context tokens used` +
        (summary.stopReason === 'context_full' ? ' · the context is full: the next turn slides it' : '') +
        (note ? ` · ${note}` : '');
      return summary.text;
    } finally {
      target.parentElement.classList.remove('streaming');
      el.log.removeAttribute('aria-busy');
    }
  }

  /** Stops a reply; returns whether one was running. */
  function stop() {
    if (!busy) return false;
    stopRequested = true;
    return true;
  }

  async function regenerate() {
    const model = app.getModel();
    if (!model || busy || replyStart === null || sessionModel !== model) return;
    clearError();
    await runTurn(async (options) => {
      await session.rewind(replyStart);
      // A fixed seed would give the same reply again: each Regenerate takes the next seed. With
      // temperature 0 the reply is always the same one, and the status says why.
      let note = '';
      if (options.temperature === 0) {
        note = 'temperature 0 (greedy) always gives this same reply: raise the temperature for another';
      } else if (app.options.seedFixed()) {
        regenerations++;
        options.seed = (options.seed + regenerations) % 4294967296;
        note = `seed ${options.seed} (the Seed field is fixed, so each Regenerate takes the next seed)`;
      }
      const text = await reply(options, false, note);
      const last = turns[turns.length - 1];
      if (last) last.reply = text;
    });
  }

  async function reset() {
    if (busy) return;
    if (session) await session.dispose().catch(() => {});
    session = null;
    sessionModel = null;
    replyStart = null;
    needsNewline = false;
    lastReply = null;
    turns = [];
    hook.chatSession = null;
    el.log.replaceChildren();
    el.status.textContent = 'A new conversation.';
    app.onBusy();
  }

  el.send.addEventListener('click', send);
  el.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.metaKey) { e.preventDefault(); send(); }
  });
  el.regenerate.addEventListener('click', regenerate);
  el.stop.addEventListener('click', stop);
  el.reset.addEventListener('click', reset);

  return {
    update() {
      const model = app.getModel();
      const off = !model || busy || app.isLoading();
      el.send.disabled = off;
      el.stop.disabled = !busy;
      el.regenerate.disabled = off || replyStart === null || sessionModel !== model;
      el.reset.disabled = busy || !session;
    },
    run: send,
    stop,
    get busy() { return busy; },
  };
}
