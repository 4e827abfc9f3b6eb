// core.js - thin helpers over one instance of the WebAssembly module: memory views,
// allocation, and turning the core's status codes into exceptions.
import { CODE_NAMES, Gpt2Error } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

export class Core {
  /** @param {any} mod the Emscripten module */
  constructor(mod) {
    this.m = mod;
    // One error record per instance: { int32 code; char message[256] } (src/status.h).
    this.err = this.malloc(260);
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
    const code = this.m.HEAP32[this.err >>> 2];
    const bytes = this.heap.subarray(this.err + 4, this.err + 260);
    const end = bytes.indexOf(0);
    const message = decoder.decode(bytes.slice(0, end < 0 ? 256 : end));
    return new Gpt2Error(message || 'unknown error', CODE_NAMES[code] || 'unknown');
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
