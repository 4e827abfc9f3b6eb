// load.js - load(source, options): opens a checkpoint's files, reads the small ones, and
// streams model.safetensors chunk by chunk into the core's streaming loader, which converts
// each tensor straight into its place in WebAssembly memory (no second copy of the weights).
import { DTYPES, MATRIX_KINDS, PRECISIONS } from './constants.js';
import { Core } from './core.js';
import { abortError, Gpt2Error, throwIfAborted } from './errors.js';
import { checkDraftModel, checkDraftTokens } from './generation.js';
import { Gpt2Model } from './model.js';
import { checkOptions, OPTION_NAMES } from './options.js';
import { openSource, readAll } from './sources.js';
import { createModule } from './wasm_module.js';

const STAGING_BYTES = 4 << 20; // chunks are copied through this buffer in WASM memory

/**
 * Loads a GPT-2 checkpoint (Hugging Face layout) into a new WebAssembly instance (or, with
 * `into`, another model's), with its draft for speculative decoding when `draft` is given.
 * @param {string|URL|Record<string, any>} [source] URL folder, local folder (Node), or
 *   object of the four files; default: the embedded model.
 * @param {import('./index.js').LoadOptions} [options]
 * @returns {Promise<Gpt2Model>}
 */
export async function load(source, options) {
  options = checkOptions(options, OPTION_NAMES.load);
  const { memoryBudget = 0, precision = 'auto' } = options;
  if (typeof memoryBudget !== 'number' || !Number.isSafeInteger(memoryBudget) || memoryBudget < 0) {
    throw new Gpt2Error(`memoryBudget must be a whole number of bytes >= 0 (0: no limit), got ${JSON.stringify(memoryBudget)}`, 'arg');
  }
  if (!PRECISIONS.includes(precision)) {
    throw new Gpt2Error(`precision must be one of ${PRECISIONS.map((p) => `'${p}'`).join(', ')}, got ${JSON.stringify(precision)}`, 'arg');
  }
  let into = options.into;
  if (into !== undefined && (!(into instanceof Gpt2Model) || into.disposed || into.sharedCore)) {
    throw new Gpt2Error('into must be a loaded model (not disposed, not itself loaded with into)', 'arg');
  }
  const { draft, draftTokens, draftPrecision = 'q8_0' } = options;
  if (draft === undefined || draft === null) {
    for (const key of ['draftTokens', 'draftPrecision']) {
      if (options[key] !== undefined) throw new Gpt2Error(`${key} needs a draft (option draft)`, 'arg');
    }
  } else {
    if (draftTokens !== undefined) checkDraftTokens(draftTokens);
    if (!PRECISIONS.includes(draftPrecision)) {
      throw new Gpt2Error(`draftPrecision must be one of ${PRECISIONS.map((p) => `'${p}'`).join(', ')}, got ${JSON.stringify(draftPrecision)}`, 'arg');
    }
    if (draft instanceof Gpt2Model) {
      // A loaded draft: the model joins the draft's instance (the draft's host if it has one).
      if (draft.disposed) throw new Gpt2Error('draft must be a loaded, not disposed model', 'arg');
      if (options.draftPrecision !== undefined) throw new Gpt2Error('draftPrecision applies to a draft source, not to a loaded draft model', 'arg');
      const host = draft.host ?? draft;
      if (into !== undefined && into !== host) {
        throw new Gpt2Error("draft and into must share one WebAssembly instance (load the draft with { into })", 'arg');
      }
      into = host;
    }
  }
  const model = await loadOne(source, options, into);
  return withDraft(model, options);
}

/** load() for one checkpoint, into `into`'s instance or a new one (options checked). */
async function loadOne(source, options, into) {
  const { onProgress, signal, memoryBudget = 0, precision = 'auto' } = options;
  const precisionCode = PRECISIONS.indexOf(precision);
  throwIfAborted(signal);
  const [{ label, files }, mod] = await Promise.all([
    openSource(source, { signal, fetch: options.fetch, assetsUrl: options.assetsUrl }),
    into ? into.core.m : createModule({ wasmUrl: options.wasmUrl, assetsUrl: options.assetsUrl, threads: options.threads ?? 'auto' }),
  ]);
  if (into && into.disposed) throw new Gpt2Error('into: the model was disposed while loading', 'arg');
  const core = into ? into.core : new Core(mod);
  const started = Date.now();

  // Progress across all four files; total is known when every size is.
  const sizes = Object.values(files).map((f) => f.size);
  const total = sizes.every((s) => s !== undefined) ? sizes.reduce((a, b) => a + b, 0) : undefined;
  let loaded = 0;
  const report = (file, n) => {
    loaded += n;
    if (onProgress) onProgress({ phase: 'download', file, loaded, total });
  };

  let tokenizer = 0, loader = 0, weights = 0, staging = 0, pool = 0;
  try {
    const config = await readAll(files['config.json'], (n) => report('config.json', n));
    throwIfAborted(signal);
    const vocab = await readAll(files['vocab.json'], (n) => report('vocab.json', n));
    throwIfAborted(signal);
    const merges = await readAll(files['merges.txt'], (n) => report('merges.txt', n));
    throwIfAborted(signal);

    tokenizer = createTokenizer(core, vocab, merges);
    // the staging buffer and the pool first: the loader's budget counts what the module already
    // uses. Threads: a pool of mod.gpt2Threads threads (1 in the single-thread build) that
    // converts while loading and that every forward pass on these weights uses; freed, with
    // the workers, on dispose. With `into`, the weights share that model's instance and pool.
    staging = core.malloc(STAGING_BYTES);
    if (!into) pool = core.checkPtr(mod._wasm_pool_create(mod.gpt2Threads, core.err));
    loader = createLoader(core, config, memoryBudget, precisionCode, into ? into.pool : pool);
    const st = files['model.safetensors'];
    if (st.size !== undefined) core.check(mod._wasm_loader_set_file_size(loader, st.size, core.err));

    try {
      for await (const chunk of st.stream()) {
        throwIfAborted(signal);
        for (let at = 0; at < chunk.byteLength; at += STAGING_BYTES) {
          const part = chunk.subarray(at, Math.min(chunk.byteLength, at + STAGING_BYTES));
          core.heap.set(part, staging); // the view is re-read: memory may have grown
          core.check(mod._gpt2_loader_feed(loader, staging, part.byteLength, core.err));
        }
        report('model.safetensors', chunk.byteLength);
      }
      throwIfAborted(signal);
      weights = core.checkPtr(mod._wasm_loader_finish(loader, core.err));
    } catch (e) {
      // A size mismatch may be the server's fault rather than the file's: say where the size came from.
      if (e instanceof Gpt2Error && e.code === 'format' && st.sizeFrom && st.size !== undefined) {
        throw new Gpt2Error(`${e.message} (the size ${st.size} was announced by ${st.sizeFrom})`, e.code);
      }
      throw e;
    }
    mod._gpt2_loader_free(loader);
    loader = 0;
    core.free(staging);
    staging = 0;
    mod._wasm_weights_set_pool(weights, into ? into.pool : pool);
    if (onProgress) onProgress({ phase: 'ready', file: null, loaded, total: total ?? loaded });
    const model = new Gpt2Model(core, weights, tokenizer, {
      source: label, loadSeconds: (Date.now() - started) / 1000, ...weightsPrecision(core, weights),
      threads: mod._wasm_pool_threads(into ? into.pool : pool), build: mod.gpt2Build,
      ...(mod.gpt2ThreadsFallback ? { threadsFallback: mod.gpt2ThreadsFallback } : {}),
    });
    model.tokenizerFiles = Object.freeze({ 'vocab.json': vocab, 'merges.txt': merges });
    if (into) {
      model.sharedCore = true;
      model.host = into;
      into.guests.add(model);
      const disposeGuest = model.dispose.bind(model);
      model.dispose = () => { into.guests.delete(model); disposeGuest(); };
      return model;
    }
    model.pool = pool;
    const disposeModel = model.dispose.bind(model);
    const threadPool = pool;
    model.dispose = () => {
      if (model.disposed) return;
      disposeModel();
      mod._gpt2_pool_free(threadPool);
      mod.gpt2Terminate?.();
    };
    return model;
  } catch (e) {
    // Leave nothing allocated: free what exists; the instance itself is then unreachable.
    if (loader) mod._gpt2_loader_free(loader);
    if (weights) mod._gpt2_weights_free(weights);
    if (tokenizer) mod._gpt2_tokenizer_free(tokenizer);
    if (pool) mod._gpt2_pool_free(pool);
    if (!into) mod.gpt2Terminate?.();
    core.free(staging);
    for (const f of Object.values(files)) f.cancel?.(); // downloads not (fully) read
    if (signal && signal.aborted) throw abortError(signal);
    throw e;
  }
}

/**
 * Load's `draft` option: sets model.draft (a source is loaded into the model's instance, in
 * draftPrecision, default q8_0; a loaded model is checked) and model.draftTokens. On an error
 * the model is disposed (with the draft it loaded) and the error thrown.
 * @param {Gpt2Model} model
 * @param {import('./index.js').LoadOptions} options
 * @returns {Promise<Gpt2Model>}
 */
async function withDraft(model, options) {
  const { draft, draftTokens, draftPrecision = 'q8_0' } = options;
  if (draft === undefined || draft === null) return model;
  try {
    model.draft = checkDraftModel(model, draft instanceof Gpt2Model ? draft
      : await load(draft, { precision: draftPrecision, into: model, signal: options.signal, fetch: options.fetch, assetsUrl: options.assetsUrl }));
    model.draftTokens = draftTokens ?? null;
    return model;
  } catch (e) {
    model.dispose();
    if (e instanceof Gpt2Error && !(draft instanceof Gpt2Model)) throw new Gpt2Error(`draft: ${e.message}`, e.code);
    throw e;
  }
}

/** Creates the core's tokenizer from vocab.json and merges.txt bytes (the caller frees it). */
export function createTokenizer(core, vocab, merges) {
  const [v, vn] = core.copyIn(vocab);
  const [m, mn] = core.copyIn(merges);
  try {
    return core.checkPtr(core.m._wasm_tokenizer_create(v, vn, m, mn, core.err));
  } catch (e) {
    throw new Gpt2Error(`tokenizer: ${e.message}`, e.code);
  } finally {
    core.free(v);
    core.free(m);
  }
}

/** What the weights are stored in: `precision` (the dtype of most linear parameters),
 * `matrixPrecision` (per kind of matrix) and `precisionReason` (why, from the loader). */
function weightsPrecision(core, weights) {
  const n = 1 + MATRIX_KINDS.length; // wasm_weights_precision: the main dtype, then each kind's
  const p = core.malloc(4 * n);
  try {
    core.m._wasm_weights_precision(weights, p);
    const v = Array.from(new Int32Array(core.heap.buffer, p, n), (d) => DTYPES[d]);
    const reason = core.m._wasm_weights_precision_reason(weights) >>> 0;
    const camel = (kind) => kind.replace(/_(.)/g, (_, c) => c.toUpperCase()); // lm_head -> lmHead
    return {
      precision: v[0],
      precisionReason: core.text(reason, core.heap.indexOf(0, reason) - reason),
      matrixPrecision: Object.freeze(Object.fromEntries(MATRIX_KINDS.map((kind, k) => [camel(kind), v[1 + k]]))),
    };
  } finally {
    core.free(p);
  }
}

function createLoader(core, config, memoryBudget, precisionCode, pool) {
  const [c, cn] = core.copyIn(config);
  try {
    return core.checkPtr(core.m._wasm_loader_create(c, cn, memoryBudget, precisionCode, pool, core.err));
  } finally {
    core.free(c);
  }
}
