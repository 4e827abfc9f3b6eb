// protocol.js - the messages between the page (js/browser/index.js) and the model's worker
// (js/browser/worker.js). The worker exposes the models and sessions it holds generically:
// a method added to Gpt2Model or Session works through the worker with no code here.
//
// Requests (page -> worker), each with a request id `rid`:
//   { op: 'load', rid, source, memoryBudget, precision, cache, threads, into }
//        -> progress*, result { [HANDLE], config, info, eotId, api }   (into: a model handle here;
//           api: { model, session }, each { name: 'call' | 'get' }, the methods and getters of
//           Gpt2Model and Session, which the page mirrors)
//   { op: 'plan', rid, source, memoryBudget, precision } -> result LoadPlan (js/plan.js)
//   { op: 'call', rid, target, method, args }
//        target: a handle (a model or a session kept in the worker); method: one of `api`'s
//        names for its kind. The answer:
//        - a value: result { value };
//        - an async iterator (generate, finetune): piece* (one per item), then done { summary }
//          (summary: the iterator's `summary` promise's value, if it has one);
//        - a Gpt2Model or Session: kept in the worker, answered as { [HANDLE]: id, kind, position }.
//        Every answer about a session also carries its `position` after the call.
//   { op: 'abort', rid }   aborts a running request (its signal): it answers error AbortError
//   { op: 'cancel', rid }  stops a stream early (`break`): done (a generation's summary has
//                          stopReason 'cancelled')
// Replies (worker -> page): { rid, type: 'progress' | 'result' | 'piece' | 'done' | 'error', ... };
// errors travel as { name, message, code }.
//
// Arguments and results are structured-cloned, with two markers in arguments (at the top
// level or as a value of an options object): a model or session of the page becomes
// { [HANDLE]: id } (the worker's object), an AbortSignal becomes { [SIGNAL]: true } (the worker
// passes its own signal, aborted by 'abort'). Result buffers the target does not keep are
// transferred, not copied.

/** The key of a handle marker: { [HANDLE]: id }. */
export const HANDLE = 'gpt2-wasm:handle';
/** The key of a signal marker: { [SIGNAL]: true }. */
export const SIGNAL = 'gpt2-wasm:signal';

/** An error as plain data that survives postMessage. @param {unknown} e */
export function serializeError(e) {
  if (e && typeof e === 'object') {
    const { name, message, code } = /** @type {any} */ (e);
    return { name: String(name || 'Error'), message: String(message || e), code: code === undefined ? undefined : String(code) };
  }
  return { name: 'Error', message: String(e), code: undefined };
}

/**
 * Replaces the markers in one argument (its top level and, for a plain object, its values):
 * `leaf` maps each value and returns it, or something else to put in its place.
 * @param {unknown} arg @param {(v: unknown, key?: string) => unknown} leaf
 */
export function mapArg(arg, leaf) {
  const top = leaf(arg);
  if (top !== arg || !arg || typeof arg !== 'object' || Object.getPrototypeOf(arg) !== Object.prototype) return top;
  const out = {};
  for (const [k, v] of Object.entries(arg)) out[k] = leaf(v, k);
  return out;
}
