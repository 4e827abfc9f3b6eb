// Type declarations for 'gpt2-wasm/browser' (js/browser/index.js): the model in a Web Worker, for
// web pages.
//
//   import { loadInWorker } from 'gpt2-wasm/browser';
//   const model = await loadInWorker(undefined, { onProgress: (p) => console.log(p.loaded, p.total) });
//   for await (const { text } of model.generate('Once upon a time', { maxTokens: 40 })) output.textContent += text;
//   await model.dispose();
//
// The shapes of the shared API (js/index.d.ts) are reused: RemoteModel and RemoteSession are
// Gpt2Model and Session with promises (`Remote<T>`), as js/browser/index.js mirrors them.

import type {
  FinetuneOptions, FinetuneStep, GenerateOptions as NodeGenerateOptions, GenerationSummary, Gpt2Model, LoadProgress, ModelConfig, ModelFileName,
  ModelInfo, Piece, Precision, Session, TokenIds,
} from '../index.js';

export { Gpt2Error } from '../index.js';

/** Generation options in the worker: those of the Node API, with a draft that lives in the same worker. */
export type GenerateOptions = Omit<NodeGenerateOptions, 'draft'> & {
  /**
   * Speculative decoding: a model loaded into this one's worker with
   * `loadInWorker(source, { into: model })` and the same vocabulary (see the Node API's
   * `draft`; greedy only, else `Gpt2Error` `'unsupported'` on the first `next()`).
   */
  draft?: RemoteModel | undefined;
};

/** The contents of one checkpoint file handed to the worker (Blob/File by reference; Response and ReadableStream transferred; buffers copied). */
export type BrowserModelFile = Blob | Response | ReadableStream<Uint8Array> | ArrayBuffer | ArrayBufferView;

/** A checkpoint given as objects: one entry per file name. */
export type BrowserModelFiles = { readonly [name in ModelFileName]: BrowserModelFile };

/** A progress event of {@link loadInWorker}: those of `load()`, plus `notice` once a file could not be cached. */
export type BrowserLoadProgress = LoadProgress & {
  /** A sentence for the user: the browser cache could not keep a file (e.g. the storage is full); the load goes on without it. */
  readonly notice?: string;
};

/** Options of {@link loadInWorker}. */
export interface BrowserLoadOptions {
  /** Progress while the files are downloaded and read (`'download'`), and once at the end (`'ready'`). */
  onProgress?: ((progress: BrowserLoadProgress) => void) | undefined;
  /** Aborts the load: the worker is terminated and the promise rejects with the signal's reason or a `DOMException` `'AbortError'`. */
  signal?: AbortSignal | undefined;
  /** The most bytes the model may take: weights plus one KV cache (0: no limit). */
  memoryBudget?: number | undefined;
  /** How the weights are stored in memory (default `'auto'`: as in the file). */
  precision?: Precision | undefined;
  /** Keep files downloaded from URLs in the browser's Cache API and use them next time (default `true`). */
  cache?: boolean | undefined;
  /**
   * Threads the model computes with, in its worker (default `'auto'`: one per core when the
   * page is cross-origin isolated, else 1). A number above 1 needs a cross-origin-isolated
   * page; elsewhere the model runs on 1 thread.
   */
  threads?: number | 'auto' | undefined;
  /**
   * The folder holding a copy of this package's files (`js/`, `dist/`, `models/`), for hosts
   * that serve them elsewhere than a bundler put them: a CDN
   * (`'https://cdn.jsdelivr.net/npm/gpt2-wasm@0.1.0/'`: another origin works, its files must
   * be served with CORS; threads then fall back to 1, see `info.threadsFallback`), or a copy
   * beside an esbuild bundle (esbuild does not copy the files named with
   * `new URL(..., import.meta.url)`). The worker starts from its `js/browser/worker.js` and loads
   * everything else from there. Default: the files next to this module, or wherever the
   * bundler (Vite, webpack) emitted them.
   */
  assetsUrl?: string | URL | undefined;
  /** Where gpt2-wasm's `js/browser/worker.js` (or a module worker script importing it) is served; takes precedence over `assetsUrl` for the worker. */
  workerUrl?: string | URL | undefined;
  /**
   * Load into that model's worker and WebAssembly instance (a draft for speculative decoding):
   * no new worker; the model shares the other's memory and threads and is disposed with it.
   */
  into?: RemoteModel | undefined;
}

/** Options of {@link planInWorker}: those of {@link loadInWorker} that decide the precision and the worker. */
export interface PlanOptions {
  precision?: Precision | undefined;
  memoryBudget?: number | undefined;
  signal?: AbortSignal | undefined;
  assetsUrl?: string | URL | undefined;
  workerUrl?: string | URL | undefined;
}

/** What loading a URL folder would take, before its weights are downloaded ({@link planInWorker}). */
export interface LoadPlan {
  /** The four files' sizes added (`undefined` when a server did not say one). */
  readonly downloadBytes: number | undefined;
  readonly fileBytes: { readonly [name in ModelFileName]: number | undefined };
  /** The precision most weights have in the file. */
  readonly stored: 'f32' | 'f16' | 'q8_0';
  /** Whether the file has a separate `lm_head`. */
  readonly untied: boolean;
  /** What the load will store (`null`: nothing fits; `reason` then says what would). */
  readonly precision: 'f32' | 'f16' | 'q8_0' | null;
  /** Why: the words `info.precisionReason` will have, or the loader's message when it does not fit. */
  readonly reason: string;
  /** Bytes of memory the model will take in that precision (the core's estimate, as the README's memory table). */
  readonly need: number;
  /** Bytes the load may take: what is left of WebAssembly's 4 GB (or `memoryBudget`). */
  readonly budget: number;
  /** The estimate in each precision. */
  readonly bytes: { readonly f32: number; readonly f16: number; readonly q8_0: number };
  readonly config: { readonly nLayer: number; readonly nHead: number; readonly nEmbd: number; readonly nCtx: number; readonly nVocab: number };
}

/** Facts about a model loaded in a worker: those of `load()`, plus how the browser cache served its files. */
export type RemoteModelInfo = ModelInfo & {
  /**
   * Files served from the cache, downloaded into it, and fetched without it; `null` when
   * caching was off or the source was an object of files.
   */
  readonly cache: { readonly hits: number; readonly stored: number; readonly uncached: number } | null;
  /** Why some file could not be cached (e.g. storage full). */
  readonly cacheNotice?: string;
};

/**
 * One generation running in the worker: an async iterator of pieces with a `summary`
 * promise. Leaving the loop early (`break`) stops the worker's generation (`stopReason`
 * `'cancelled'`); `options.signal` aborts it (the iterator throws, `summary` rejects).
 */
export declare class RemoteGeneration {
  private constructor();
}
export interface RemoteGeneration extends AsyncIterableIterator<Piece> {
  /** Settles when the generation ends (the fields of the in-thread summary). */
  readonly summary: Promise<GenerationSummary>;
  next(): Promise<IteratorResult<Piece, undefined>>;
  return(): Promise<IteratorReturnResult<undefined>>;
  [Symbol.asyncIterator](): RemoteGeneration;
}

/**
 * The worker's side of a class, as js/browser/index.js mirrors it: each method returns a
 * promise of its value (a `Session` becomes a {@link RemoteSession}), each property is a
 * promise asked of the worker. A method declared on `Gpt2Model` or `Session` is thus declared
 * on {@link RemoteModel} or {@link RemoteSession} too.
 */
export type Remote<T> = {
  readonly [K in keyof T]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R> extends Session ? RemoteSession : Awaited<R>>
    : Promise<T[K]>;
};

/**
 * A session living in the worker (see `Session` in the shared API): its methods and getters
 * answered by promises. `lastPosition` is the position after the latest answer, without a
 * round trip. Calls are answered in order; while a generation runs in the session, other
 * calls reject with `Gpt2Error` `'arg'`.
 */
export declare class RemoteSession {
  private constructor();
}
export interface RemoteSession extends Remote<Omit<Session, 'generate' | 'dispose' | 'disposed'>> {
  /** The session's length after the latest call that reported it (no round trip). */
  lastPosition: number;
  /** Whether `dispose()` was called (or the model's worker is gone). */
  readonly disposed: boolean;
  /** Generates from the end of the session, appending the generated tokens to it. */
  generate(options?: GenerateOptions): RemoteGeneration;
  /** Frees the session in the worker. Safe to call twice, and after the model's dispose. */
  dispose(): Promise<void>;
}

/**
 * A model loaded in a worker by {@link loadInWorker}: the methods of `Gpt2Model` (tokenize,
 * detokenize, score, rank, session, logits, ...) answered by promises. One worker per model.
 */
export declare class RemoteModel {
  private constructor();
}
export interface RemoteModel extends Remote<Omit<Gpt2Model,
  'config' | 'info' | 'eotId' | 'disposed' | 'draft' | 'draftTokens' | 'generate' | 'finetune' | 'save' | 'dispose'>> {
  /** The model's hyper-parameters. */
  readonly config: Readonly<ModelConfig>;
  /** Facts about the load. */
  readonly info: Readonly<RemoteModelInfo>;
  /** The id of `'<|endoftext|>'`. */
  readonly eotId: number;
  /** Whether `dispose()` was called (or the worker died, or the model it was loaded into was disposed). */
  readonly disposed: boolean;
  /** Whether it was loaded into another model's worker (`into`): `dispose()` then frees it there and keeps the worker. */
  readonly guest: boolean;
  /** Generates a continuation in the worker; unknown option names throw at once, invalid values are reported by the first `next()`. */
  generate(prompt: string | TokenIds, options?: GenerateOptions): RemoteGeneration;
  /**
   * Fine-tunes the model in the worker (as `Gpt2Model.finetune`), one item per optimiser step;
   * invalid options or data are reported by the first `next()`. `signal` or `break` stop at a
   * step boundary; the worker's model then holds the weights trained so far.
   */
  finetune(textOrIds: string | TokenIds, options?: FinetuneOptions): AsyncIterableIterator<FinetuneStep>;
  /** The model as a Hugging Face folder: the four files as bytes (`dtype` of the matrices: 'f32' by default). */
  save(options?: { dtype?: 'f32' | 'f16' }): Promise<Record<ModelFileName, Uint8Array>>;
  /** Terminates the worker, freeing all of the model's memory; pending calls reject. Safe to call twice. */
  dispose(): Promise<void>;
}

/**
 * Loads a GPT-2 checkpoint into a new Web Worker.
 * @param source a folder URL (relative URLs resolve against the page), an object of the four
 *   files, or nothing for the embedded model.
 * @throws {Gpt2Error} invalid or unreadable files (codes as `load()`); `'io'` when the worker
 *   does not start (the message names the worker's URL and its HTTP status, and the
 *   `workerUrl` / `assetsUrl` options).
 */
export function loadInWorker(source?: string | URL | BrowserModelFiles | null, options?: BrowserLoadOptions): Promise<RemoteModel>;

/**
 * What loading a URL folder would take, before its weights are downloaded (in a short-lived
 * worker): download size, the precision the load will use and why, the memory it needs (the
 * core's own estimate and choice). Reads config.json, the other files' sizes and
 * model.safetensors' header (HTTP Range requests).
 */
export function planInWorker(source: string | URL, options?: PlanOptions): Promise<LoadPlan>;

/** Removes every model file kept by the browser cache; resolves with how many were removed. */
export function clearModelCache(): Promise<number>;

/** Whether the page is cross-origin isolated (COOP `same-origin` + COEP `require-corp`), which threads need. */
export function isCrossOriginIsolated(): boolean;
