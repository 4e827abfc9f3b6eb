// page.js - what every part of the demo page shares: finding and making elements, and the
// page-wide messages (#status, #error, #notice, <body data-state>). Plain functions over the
// page's elements; no state of their own.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** A new element with a class and text (either may be empty). */
export function make(tag, className = '', text = '') {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

/** <body data-state>: 'starting' | 'loading' | 'ready' | 'generating' | 'idle' (no model) | 'broken'. */
export function setState(state) {
  document.body.dataset.state = state;
}

/** #status: one line saying what the page is doing. */
export function setStatus(text) {
  $('status').textContent = text;
}

/** A message that is not a failure, in #notice (hidden when text is empty). */
export function showNotice(text) {
  const notice = $('notice');
  notice.textContent = text;
  notice.hidden = !text;
}

/** Hides #error and #notice. */
export function clearError() {
  const error = $('error');
  error.hidden = true;
  error.textContent = '';
  showNotice('');
}

/** A failure, in words, in #error: a title and an optional detail (words, or an error: its message). */
export function showError(title, detail) {
  const error = $('error');
  const words = detail === undefined || typeof detail === 'string' ? detail : (detail && detail.message) || String(detail);
  error.replaceChildren(make('strong', '', title));
  if (words) error.append(' ', make('span', 'detail', words));
  error.hidden = false;
  error.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}

/** Saves a Blob as a file called name (the browser's download). */
export function saveFile(blob, name) {
  const a = make('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

/** Whether an error is an abort (AbortSignal, or the worker's 'aborted'). */
export const isAbort = (e) => e && (e.name === 'AbortError' || e.code === 'aborted');
