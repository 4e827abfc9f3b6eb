// quantize.js - quantizeFolder(inDir, outDir, { type }) (Node only): converts a Hugging Face
// GPT-2 folder to q8_0 or f16 with the core's streaming converter (src/quantize.c) running in
// WebAssembly. model.safetensors is read in chunks and the output is written as it is
// produced, so memory stays bounded (about one weight matrix) whatever the file's size; the
// output goes to a temporary file renamed at the end. config.json, vocab.json and merges.txt
// are copied. The file format is described in docs/quantized-format.md.
import { Core } from '../core.js';
import { Gpt2Error } from '../errors.js';
import { checkOptions, OPTION_NAMES } from '../options.js';
import { createModule } from '../wasm_module.js';
import { DTYPES } from '../constants.js';

const CHUNK = 1 << 20;
/** The output types: the core's dtype names (js/constants.js) that the converter writes. */
const TYPES = ['f16', 'q8_0'];

/**
 * @param {string} inDir a folder with config.json, vocab.json, merges.txt, model.safetensors
 * @param {string} outDir the folder to write (created if missing)
 * @param {{ type: 'q8_0' | 'f16', onProgress?: (p: { loaded: number, total: number }) => void }} options
 * @returns {Promise<{ bytes: number, summary: string }>} the output file's size and what was converted
 */
export async function quantizeFolder(inDir, outDir, options) {
  const { type, onProgress } = checkOptions(options, OPTION_NAMES.quantize);
  if (!TYPES.includes(type)) throw new Gpt2Error(`--type must be q8_0 or f16, got '${type}'`, 'arg');
  const { mkdir, copyFile, open, rename, rm, stat } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const src = join(inDir, 'model.safetensors');
  let total;
  try {
    total = (await stat(src)).size;
  } catch (e) {
    throw new Gpt2Error(`cannot open ${src}: ${e.message}`, 'io');
  }
  await mkdir(outDir, { recursive: true });
  for (const f of ['config.json', 'vocab.json', 'merges.txt']) {
    try {
      await copyFile(join(inDir, f), join(outDir, f));
    } catch (e) {
      throw new Gpt2Error(`cannot copy ${join(inDir, f)}: ${e.message}`, 'io');
    }
  }
  const dst = join(outDir, 'model.safetensors');
  const tmp = `${dst}.tmp`;
  const core = new Core(await createModule());
  const m = core.m;
  const q = core.checkPtr(m._wasm_quantizer_create(DTYPES.indexOf(type), core.err));
  const staging = core.malloc(CHUNK);
  const input = await open(src, 'r');
  const output = await open(tmp, 'w');
  let done = false;
  try {
    const drain = async () => {
      const n = m._wasm_quantizer_output_len(q) >>> 0;
      if (n === 0) return;
      const p = m._wasm_quantizer_output_ptr(q) >>> 0;
      // copy out: writing may yield, and memory may grow under a view
      const bytes = core.heap.slice(p, p + n);
      m._gpt2_quantizer_consume(q, n);
      let at = 0;
      while (at < bytes.length) at += (await output.write(bytes, at, bytes.length - at)).bytesWritten;
    };
    const buf = Buffer.alloc(CHUNK);
    let loaded = 0;
    for (;;) {
      const { bytesRead } = await input.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      core.heap.set(buf.subarray(0, bytesRead), staging);
      core.check(m._gpt2_quantizer_feed(q, staging, bytesRead, core.err));
      await drain();
      loaded += bytesRead;
      if (onProgress) onProgress({ loaded, total });
    }
    core.check(m._gpt2_quantizer_finish(q, core.err));
    await drain();
    const bytes = m._wasm_quantizer_output_size(q);
    const summary = m.UTF8ToString(m._gpt2_quantizer_summary(q));
    await output.close();
    await rename(tmp, dst);
    done = true;
    return { bytes, summary };
  } finally {
    await input.close();
    if (!done) {
      await output.close().catch(() => {});
      await rm(tmp, { force: true });
    }
    core.free(staging);
    m._gpt2_quantizer_free(q);
  }
}
