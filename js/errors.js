// errors.js - how failures reach JavaScript.

/**
 * An error reported by the C core, with its message and code name
 * ('io' | 'format' | 'shape' | 'unsupported' | 'nomem' | 'arg' | 'range' | 'aborted').
 */
export class Gpt2Error extends Error {
  /** @param {string} message @param {string} code */
  constructor(message, code) {
    super(message);
    this.name = 'Gpt2Error';
    this.code = code;
  }
}

/** A failed response's status in words, as every error here states it: "HTTP 404 Not Found". */
export function httpStatus(response) {
  return `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
}

/** The error an aborted operation rejects with (a DOMException named 'AbortError'). */
export function abortError(signal) {
  if (signal && signal.reason instanceof Error) return signal.reason;
  return new DOMException('The operation was aborted.', 'AbortError');
}

/** Throws the abort error if signal is aborted. */
export function throwIfAborted(signal) {
  if (signal && signal.aborted) throw abortError(signal);
}
