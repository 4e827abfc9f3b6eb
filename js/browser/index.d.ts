// Type declarations for 'gpt2-wasm/browser' (js/browser/index.js): the model in a Web Worker, for
// web pages.
//
//   import { loadInWorker } from 'gpt2-wasm/browser';
//   const model = await loadInWorker(undefined, { onProgress: (p) => console.log(p.loaded, p.total) });
//   for await (const { text } of model.generate('Once upon a time', { maxTokens: 40 })) output.textContent += text;
//   await model.dispose();
//
// The shapes of the Node API (js/index.d.ts) are reused; here every call returns a promise.
// Keep these declarations in step with js/browser/index.js.

import type {
  FinetuneOptions, FinetuneStep, GenerateOptions as NodeGenerateOptions, GenerationSummary, LoadProgress, ModelConfig, ModelFileName, ModelInfo, Piece,
  Precision, RankOptions, RankResult, ScoreOptions, ScoreResult, TokenIds, TokenizeOptions,
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
   * `new URL(..., import.meta.url)`). The worker starts from its `js/worker.js` and loads
   * everything else from there. Default: the files next to this module, or wherever the
   * bundler (Vite, webpack) emitted them.
   */
  assetsUrl?: string | URL | undefined;
  /** Where gpt2-wasm's `js/worker.js` (or a module worker script importing it) is served; takes precedence over `assetsUrl` for the worker. */
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
export declare class RemoteGeneration implements AsyncIterableIterator<Piece> {
  private constructor();
  /** Settles when the generation ends. */
  readonly summary: Promise<GenerationSummary>;
  next(): Promise<IteratorResult<Piece, undefined>>;
  return(): Promise<IteratorReturnResult<undefined>>;
  [Symbol.asyncIterator](): RemoteGeneration;
}

/**
 * A session living in the worker (see `Session` in the Node API). `position`, `tokens` and
 * `text` ask the worker; `lastPosition` is the position after the latest answer.
 */
export declare class RemoteSession {
  private constructor();
  /** The session's length after the latest call that reported it (no round trip). */
  lastPosition: number;
  /** Whether `dispose()` was called (or the model's worker is gone). */
  readonly disposed: boolean;
  /** Number of tokens in the session. */
  readonly position: Promise<number>;
  /** A copy of the session's token ids. */
  readonly tokens: Promise<number[]>;
  /** The session's text. */
  readonly text: Promise<string>;
  /** Appends text (tokenized on its own) or token ids and runs them through the model; resolves with the ids appended. */
  append(input: string | TokenIds, options?: TokenizeOptions): Promise<number[]>;
  /** Generates from the end of the session, appending the generated tokens to it. */
  generate(options?: GenerateOptions): RemoteGeneration;
  /** A new session with the same tokens and a copy of the KV cache. */
  fork(): Promise<RemoteSession>;
  /** Keeps the first `position` tokens and forgets the rest. */
  rewind(position: number): Promise<void>;
  /** Frees the session in the worker. Safe to call twice, and after the model's dispose. */
  dispose(): Promise<void>;
}

/** A model loaded in a worker by {@link loadInWorker}: the shape of `Gpt2Model`, with promises. One worker per model. */
export declare class RemoteModel {
  private constructor();
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
  tokenize(text: string, options?: TokenizeOptions): Promise<number[]>;
  detokenize(ids: TokenIds): Promise<string>;
  score(textOrIds: string | TokenIds, options?: ScoreOptions): Promise<ScoreResult>;
  rank(prompt: string, choices: readonly string[], options?: RankOptions): Promise<RankResult[]>;
  /** A new, empty session living in the worker. */
  session(): Promise<RemoteSession>;
  /** Generates a continuation in the worker; invalid options are reported by the first `next()`. */
  generate(prompt: string | TokenIds, options?: GenerateOptions): RemoteGeneration;
  /**
   * Fine-tunes the model in the worker (as `Gpt2Model.finetune`), one item per optimiser step;
   * invalid options or data are reported by the first `next()`. `signal` or `break` stop at a
   * step boundary; the worker's model then holds the weights trained so far.
   */
  finetune(textOrIds: string | TokenIds, options?: FinetuneOptions): AsyncIterableIterator<FinetuneStep>;
  /** The model as a Hugging Face folder: the four files as bytes (`dtype` of the matrices: 'f32' by default). */
  save(options?: { dtype?: 'f32' | 'f16' }): Promise<Record<'config.json' | 'model.safetensors' | 'vocab.json' | 'merges.txt', Uint8Array>>;
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
