// plan.js - what loading a checkpoint from a URL folder will take, before its weights are
// downloaded: the download size, the precision the file stores, the precision the loader will
// choose and the memory it will need. The numbers and the choice come from the core itself
// (wasm_precision_plan: gpt2_model_bytes and the loader's gpt2_precision_choose; the same
// estimate as tools/memory-table.mjs), never from a table typed by hand. Of model.safetensors
// only the size and the header are read (HTTP Range requests: a few KB of a 6 GB file).
//
//   const plan = await planLoad('https://huggingface.co/openai-community/gpt2-xl/resolve/main/');
//   // { precision: 'f16', reason: 'auto: f16, because f32 as stored needs 6.9 GB but ...', ... }
import { DTYPES, LIMITS, PRECISIONS } from './constants.js';
import { Core } from './core.js';
import { Gpt2Error, throwIfAborted } from './errors.js';
import { createModule } from './wasm_module.js';

/**
 * @typedef {object} LoadPlan
 * @property {number|undefined} downloadBytes the four files' sizes added (undefined when a
 *   size is unknown)
 * @property {Record<string, number|undefined>} fileBytes each file's size
 * @property {'f32'|'f16'|'q8_0'} stored the precision most weights are stored in, in the file
 * @property {boolean} untied whether the file has a separate lm_head
 * @property {'f32'|'f16'|'q8_0'|null} precision what the load will store (null: nothing fits)
 * @property {string} reason why (the words model.info.precisionReason will have), or why it
 *   does not fit (the loader's message, naming a precision that fits)
 * @property {number} need bytes of memory the model will take (the core's estimate)
 * @property {number} budget bytes the load may take (what is left of WebAssembly's 4 GB)
 * @property {{ f32: number, f16: number, q8_0: number }} bytes the estimate in each precision
 * @property {import('./index.js').ModelConfig} config from config.json
 */

/**
 * Plans the load of a URL folder holding config.json, vocab.json, merges.txt and
 * model.safetensors.
 * @param {string|URL} folder
 * @param {{ precision?: 'auto'|'f32'|'f16'|'q8_0', memoryBudget?: number, fetch?: typeof fetch,
 *   signal?: AbortSignal, assetsUrl?: string|URL }} [options]
 * @returns {Promise<LoadPlan>}
 */
export async function planLoad(folder, options = {}) {
  const { precision = 'auto', memoryBudget = 0, signal, assetsUrl } = options;
  const fetchFn = options.fetch || globalThis.fetch;
  const code = PRECISIONS.indexOf(precision);
  if (code < 0) throw new Gpt2Error(`precision must be one of ${PRECISIONS.join(', ')}, got ${JSON.stringify(precision)}`, 'arg');
  const base = new URL(String(folder).replace(/\/?$/, '/'));
  const url = (name) => new URL(name, base).href;
  const [config, tokenizerSizes, weights] = await Promise.all([
    fetchOk(fetchFn, url('config.json'), {}, signal).then((r) => r.arrayBuffer()).then((b) => new Uint8Array(b)),
    Promise.all(['vocab.json', 'merges.txt'].map((f) => headSize(fetchFn, url(f), signal))),
    safetensorsHeader(fetchFn, url('model.safetensors'), signal),
  ]);
  throwIfAborted(signal);
  const { stored, untied } = storedPrecision(weights.header);
  const fileBytes = {
    'config.json': config.byteLength, 'vocab.json': tokenizerSizes[0], 'merges.txt': tokenizerSizes[1],
    'model.safetensors': weights.size,
  };
  const sizes = Object.values(fileBytes);
  const downloadBytes = sizes.every((s) => s !== undefined) ? sizes.reduce((a, b) => a + b, 0) : undefined;

  const mod = await createModule({ threads: 1, assetsUrl });
  const core = new Core(mod);
  const [c, cn] = core.copyIn(config);
  const reasonPtr = core.malloc(LIMITS.precisionReasonBytes);
  const out = core.malloc(16);
  try {
    const bytes = {};
    for (const name of DTYPES) { // the wasm functions take and return gpt2_precision codes
      const b = mod._wasm_model_bytes(c, cn, PRECISIONS.indexOf(name), untied ? 1 : 0, core.err);
      if (b < 0) throw core.error();
      bytes[name] = b;
    }
    const chosen = mod._wasm_precision_plan(c, cn, PRECISIONS.indexOf(stored), untied ? 1 : 0, code, memoryBudget, reasonPtr, out, core.err);
    if (chosen < 0) throw core.error();
    const [need, budget] = new Float64Array(core.heap.buffer, out, 2);
    const reason = chosen === 0 ? core.error().message : core.text(reasonPtr, core.heap.indexOf(0, reasonPtr) - reasonPtr);
    const cfg = JSON.parse(new TextDecoder().decode(config));
    return {
      downloadBytes, fileBytes, stored, untied, precision: chosen === 0 ? null : PRECISIONS[chosen], reason, need, budget, bytes,
      config: { nLayer: cfg.n_layer, nHead: cfg.n_head, nEmbd: cfg.n_embd, nCtx: cfg.n_positions ?? cfg.n_ctx, nVocab: cfg.vocab_size },
    };
  } finally {
    core.free(c);
    core.free(reasonPtr);
    core.free(out);
    mod.gpt2Terminate?.();
  }
}

/**
 * The precision a safetensors header stores its weights in (the dtype holding most elements of
 * the matrices: F32 and BF16 load as f32, F16 as f16, NAME.q8 tensors as q8_0) and whether it
 * has a separate lm_head.
 * @param {Record<string, any>} header the parsed header
 */
export function storedPrecision(header) {
  const count = { f32: 0, f16: 0, q8_0: 0 };
  let untied = false;
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || !t || !Array.isArray(t.shape)) continue;
    if (/^(?:transformer\.)?lm_head\./.test(name) || name.startsWith('lm_head.')) untied = true;
    if (name.endsWith('.scale') || t.shape.length !== 2) continue;
    const n = t.shape[0] * t.shape[1];
    if (name.endsWith('.q8')) count.q8_0 += n;
    else if (t.dtype === 'F16') count.f16 += n;
    else count.f32 += n;
  }
  const stored = Object.keys(count).reduce((a, b) => (count[b] > count[a] ? b : a));
  return { stored, untied };
}

async function fetchOk(fetchFn, url, init, signal) {
  let r;
  try {
    r = await fetchFn(url, { ...init, signal });
  } catch (e) {
    if (signal && signal.aborted) throw e;
    throw new Gpt2Error(`${url} could not be fetched: ${e.message}`, 'io');
  }
  if (!r.ok) {
    r.body?.cancel().catch(() => {});
    throw new Gpt2Error(`${url}: HTTP ${r.status}${r.status === 404 ? ' (not found)' : ''}`, 'io');
  }
  return r;
}

/** A file's size from a HEAD request (undefined when the server does not say). */
async function headSize(fetchFn, url, signal) {
  const r = await fetchOk(fetchFn, url, { method: 'HEAD' }, signal);
  return lengthOf(r);
}

function lengthOf(r) {
  const enc = r.headers.get('content-encoding');
  const n = Number(r.headers.get('content-length'));
  return r.headers.get('content-length') !== null && (!enc || enc === 'identity') && Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The first `n` bytes of a file and its total size: a Range request; a server that ignores
 * Range (200) is read up to n bytes and the rest of the body cancelled.
 */
async function prefix(fetchFn, url, n, signal) {
  const r = await fetchOk(fetchFn, url, { headers: { Range: `bytes=0-${n - 1}` } }, signal);
  let size;
  if (r.status === 206) {
    const m = /\/(\d+)\s*$/.exec(r.headers.get('content-range') || '');
    size = m ? Number(m[1]) : undefined;
  } else {
    size = lengthOf(r);
  }
  const bytes = new Uint8Array(n);
  let have = 0;
  const reader = r.body.getReader();
  try {
    while (have < n) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = Math.min(value.byteLength, n - have);
      bytes.set(value.subarray(0, take), have);
      have += take;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (have < n) throw new Gpt2Error(`${url}: the file ends after ${have} bytes (a safetensors header needs ${n})`, 'format');
  return { bytes, size };
}

/** model.safetensors' size and parsed header, from its first 8 + N bytes. */
async function safetensorsHeader(fetchFn, url, signal) {
  const first = await prefix(fetchFn, url, 8, signal);
  const n = Number(new DataView(first.bytes.buffer).getBigUint64(0, true));
  if (!(n > 1 && n <= LIMITS.maxHeaderBytes)) throw new Gpt2Error(`${url}: not a safetensors file (header length ${n})`, 'format');
  const all = await prefix(fetchFn, url, 8 + n, signal);
  let header;
  try {
    header = JSON.parse(new TextDecoder().decode(all.bytes.subarray(8)));
  } catch (e) {
    throw new Gpt2Error(`${url}: the safetensors header is not JSON (${e.message})`, 'format');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new Gpt2Error(`${url}: the safetensors header is not an object`, 'format');
  // A server that hides Content-Range from scripts (CORS): ask for the size with HEAD.
  const size = first.size ?? all.size ?? await headSize(fetchFn, url, signal);
  return { size, header };
}
