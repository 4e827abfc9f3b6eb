// core.js - thin helpers over one instance of the WebAssembly module: memory views,
// allocation, copying token ids in, and turning the core's status codes into exceptions.
import { ERROR_CODES, LAYOUT } from './constants.js';
import { Gpt2Error } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

export class Core {
  /** @param {any} mod the Emscripten module */
  constructor(mod) {
    this.m = mod;
    // One error record per instance: gpt2_error (src/status.h).
    this.err = this.malloc(LAYOUT.error.size);
  }

  /** Current view of the whole memory (it changes when memory grows). */
  get heap() { return this.m.HEAPU8; }

  /** malloc that throws instead of returning 0. Pointers are unsigned (`>>> 0`). */
  malloc(n) {
    const p = this.m._malloc(Math.max(1, n)) >>> 0;
    if (p === 0) throw new Gpt2Error(`out of WebAssembly memory allocating ${n} bytes`, 'nomem');
    return p;
  }

  free(p) { if (p) this.m._free(p); }

  /** The message of the last error as a Gpt2Error. */
  error() {
    const { code, message: at, size } = LAYOUT.error;
    const bytes = this.heap.subarray(this.err + at, this.err + size);
    const end = bytes.indexOf(0);
    const message = decoder.decode(bytes.slice(0, end < 0 ? bytes.length : end));
    return new Gpt2Error(message || 'unknown error', ERROR_CODES[this.i32(this.err + code)] || 'unknown');
  }

  /** Throws the recorded error if rc (a gpt2_err) is not 0. */
  check(rc) { if (rc !== 0) throw this.error(); }

  /** Throws the recorded error if ptr is 0; returns the pointer unsigned. */
  checkPtr(ptr) {
    const p = ptr >>> 0;
    if (p === 0) throw this.error();
    return p;
  }

  /** Copies bytes into new memory; returns [ptr, length]. */
  copyIn(bytes) {
    const p = this.malloc(bytes.length);
    this.heap.set(bytes, p);
    return [p, bytes.length];
  }

  /**
   * Copies token ids into new memory after checking each is in [0, nVocab); returns [ptr, count].
   * @param {ArrayLike<number>} ids @param {number} nVocab
   */
  copyIds(ids, nVocab) {
    if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) throw new Gpt2Error('token ids must be an array of numbers', 'arg');
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= nVocab) {
        throw new Gpt2Error(`token id ${id} at index ${i} is outside the vocabulary [0, ${nVocab})`, 'range');
      }
    }
    const p = this.malloc(4 * Math.max(1, ids.length));
    this.m.HEAP32.set(ids, p >>> 2);
    return [p, ids.length];
  }

  /**
   * Writes fields of the C struct at p by name, at the offsets of layout (a LAYOUT entry of
   * js/constants.js): int (int32, enum or pointer), float (float32) and u64 (uint64_t, from a
   * whole number exact up to 2^53: low word, then high word).
   * @param {number} p @param {Record<string, number>} layout
   * @param {{ int?: Record<string, number>, float?: Record<string, number>, u64?: Record<string, number> }} fields
   */
  setFields(p, layout, { int = {}, float = {}, u64 = {} }) {
    const at = (name) => (p + layout[name]) >>> 2;
    for (const [name, v] of Object.entries(int)) this.m.HEAP32[at(name)] = v;
    for (const [name, v] of Object.entries(float)) this.m.HEAPF32[at(name)] = v;
    for (const [name, v] of Object.entries(u64)) this.m.HEAPU32.set([v % 2 ** 32, Math.floor(v / 2 ** 32)], at(name));
  }

  /** Encodes a string as UTF-8 into new memory, NUL-terminated; returns [ptr, byteLength]. */
  string(s) {
    const bytes = encoder.encode(s);
    const p = this.malloc(bytes.length + 1);
    this.heap.set(bytes, p);
    this.heap[p + bytes.length] = 0;
    return [p, bytes.length];
  }

  /** Decodes len bytes of UTF-8 at ptr (copied first: the memory may be shared). */
  text(ptr, len) { return decoder.decode(this.heap.slice(ptr, ptr + len)); }

  i32(ptr) { return this.m.HEAP32[ptr >>> 2]; }
  u32(ptr) { return this.m.HEAPU32[ptr >>> 2]; }
}

export { encoder, decoder };
