// Type declarations for gpt2-wasm: GPT-2 text generation in WebAssembly, for Node and browsers.
// Over 600 lines because it is the API's reference: every option and result is documented here.
//
//   import { load } from 'gpt2-wasm';
//   const model = await load();                      // the embedded model, or a URL / folder
//   for await (const { text } of model.generate('Once upon a time', { maxTokens: 40 }))
//     process.stdout.write(text);
//
// These declarations describe js/index.js and the modules it re-exports (load.js, model.js,
// errors.js, sources.js, node/download.js); keep them in step with the code.

/** The four files of a checkpoint in Hugging Face layout. */
export type ModelFileName = 'config.json' | 'vocab.json' | 'merges.txt' | 'model.safetensors';

/**
 * The contents of one checkpoint file, read once, in chunks. A `Response` must be `ok`; its
 * size is known from `Content-Length` when the body is not content-encoded. A
 * `ReadableStream` has no known size (progress then has no total).
 */
export type ModelFile = Response | Blob | ReadableStream<Uint8Array> | ArrayBuffer | ArrayBufferView;

/** A checkpoint given as objects: one entry per file name (other keys are ignored). */
export type ModelFiles = { readonly [name in ModelFileName]: ModelFile };

/**
 * Where a checkpoint comes from:
 * - an `http:`/`https:` URL (string or `URL`) of a folder holding the four files, fetched with
 *   `fetch` (all four requests start at once);
 * - in Node, a local folder: a path (relative to the working directory) or a `file:` URL;
 * - in a browser, a string without a scheme is a URL relative to the page;
 * - an object of the four files ({@link ModelFiles}).
 */
export type ModelSource = string | URL | ModelFiles;

/** A progress event while the files are read (`'download'`, many) and once at the end (`'ready'`). */
export type LoadProgress = DownloadProgress | ReadyProgress;

/** Some bytes of one file have been read and processed. */
export interface DownloadProgress {
  /** Reading the files. */
  readonly phase: 'download';
  /** The file the latest bytes belong to. Files are read in the order config, vocab, merges, weights. */
  readonly file: ModelFileName;
  /** Bytes read so far, across all four files. */
  readonly loaded: number;
  /** Total bytes of the four files, or `undefined` when the size of any of them is unknown. */
  readonly total: number | undefined;
}

/** The model is ready; sent once, just before `load()` resolves. */
export interface ReadyProgress {
  /** Loading has finished. */
  readonly phase: 'ready';
  /** Always `null`: no file in particular. */
  readonly file: null;
  /** Bytes read, across all four files. */
  readonly loaded: number;
  /** The total, now known: equal to `loaded` when it was unknown during the download. */
  readonly total: number;
}

/** Options of {@link load}. */
export interface LoadOptions {
  /** Called for every chunk read (`phase: 'download'`) and once at the end (`phase: 'ready'`). */
  onProgress?: ((progress: LoadProgress) => void) | undefined;
  /** Aborts the load; `load()` then rejects with the signal's reason or a `DOMException` named `'AbortError'`. */
  signal?: AbortSignal | undefined;
  /**
   * The most bytes the model may take: its weights in the chosen precision plus one KV cache
   * and scratch at full context. A larger model is rejected with {@link Gpt2Error} `'nomem'`
   * as soon as `config.json` (or the safetensors header) is read, before the weights are
   * downloaded; the message names a precision that would fit (e.g. "... in q8_0 it needs
   * 2.4 GB: load with precision 'q8_0'"). 0 or absent: no limit of yours; WebAssembly's own
   * 4 GB (minus what the module already uses) always applies.
   */
  memoryBudget?: number | undefined;
  /**
   * How the linear weights are stored in memory (default `'auto'`: as in the file: F32 and
   * BF16 as f32, F16 as f16, quantized files as q8_0; if that does not fit in the memory
   * budget or WebAssembly's 4 GB, the most precise of f16 and q8_0 that does, as
   * {@link ModelInfo.precisionReason} says). `'f32'`, `'f16'`, `'q8_0'` convert while
   * loading (q8_0: blocks of 32 with an fp16 scale; a quantized file loaded as `'f32'` gets
   * its dequantized values exactly). f16 halves and q8_0 roughly quarters the memory of f32
   * weights.
   */
  precision?: Precision | undefined;
  /** The `fetch` used for URL sources (default: `globalThis.fetch`), e.g. to add headers or a cache. */
  fetch?: typeof globalThis.fetch | undefined;
  /** Where `gpt2.wasm` is (default: `dist/gpt2.wasm` of this package); relative to `dist/gpt2.mjs`. Implies the single-thread build. */
  wasmUrl?: string | URL | undefined;
  /**
   * The folder holding a copy of this package's files (`dist/`, `models/`), for hosts that
   * serve them elsewhere than a bundler put them, e.g. a CDN
   * (`'https://cdn.jsdelivr.net/npm/gpt2-wasm@0.1.0/'`) or a copy beside an esbuild bundle
   * (esbuild does not copy the files the package names with `new URL(..., import.meta.url)`).
   * The WebAssembly build is loaded from its `dist/`, and the embedded model (no `source`) from
   * its `models/`. Relative URLs resolve against the page. Default: the files next to this
   * module, or wherever a bundler (Vite, webpack) emitted them.
   */
  assetsUrl?: string | URL | undefined;
  /**
   * Threads for the forward pass. `'auto'` (default): one per core (`os.availableParallelism()` /
   * `navigator.hardwareConcurrency`) with the threaded build (`dist/gpt2-mt.*`) in Node and in
   * cross-origin-isolated workers; 1 (the single-thread build) elsewhere, including a page's
   * main thread, where a thread may not block. A number > 1 uses the threaded build wherever
   * `SharedArrayBuffer` is available (else 1). `model.info.threads` and `model.info.build` say
   * what was chosen.
   */
  threads?: number | 'auto' | undefined;
  /**
   * Loads the checkpoint into the WebAssembly instance of an already loaded model (sharing its
   * memory and threads; `wasmUrl` and `threads` are then ignored), e.g. a draft for that
   * model's speculative decoding ({@link GenerateOptions.draft}). It is disposed with that model.
   */
  into?: Gpt2Model | undefined;
  /**
   * A draft for speculative decoding, used by every {@link Gpt2Model.generate} and
   * {@link Session.generate} of this model unless they pass `draft` themselves (`null`: none):
   * a source (as `source`; loaded into this model's instance in `draftPrecision`) or a loaded
   * model with the same vocabulary (this model is then loaded into the draft's instance, and
   * disposing the draft disposes this model too). Same vocabulary size required
   * (`'shape'` otherwise). {@link Gpt2Model.draft} is the loaded draft.
   */
  draft?: ModelSource | Gpt2Model | null | undefined;
  /** Tokens the draft proposes per round, 1..16 (default 4); only with `draft`. */
  draftTokens?: number | undefined;
  /** The precision of a draft given as a source (default `'q8_0'`: the same checkpoint in q8_0 is a self-draft). */
  draftPrecision?: Precision | undefined;
}

/**
 * Loads a GPT-2 checkpoint (Hugging Face layout: `config.json`, `vocab.json`, `merges.txt`,
 * `model.safetensors` in float32, float16 or bfloat16) into a new WebAssembly instance. The
 * weights are streamed straight into WebAssembly memory as they arrive.
 *
 * @param source the checkpoint; absent, `undefined` or `null`: the small model embedded in the
 *   package ({@link defaultModelUrl}).
 * @throws {Gpt2Error} unreadable or invalid files (`'io'`, `'format'`, `'shape'`, `'unsupported'`,
 *   `'nomem'`, `'arg'`); a `DOMException` `'AbortError'` when `options.signal` aborts; `'io'` also when
 *   the WebAssembly build cannot be loaded (an installed package without `dist/`: reinstall it; a
 *   checkout: `npm run build`; a bundle without its files: see {@link LoadOptions.assetsUrl}).
 */
export function load(source?: ModelSource | null, options?: LoadOptions): Promise<Gpt2Model>;

/** The URL of the embedded model's folder (`models/` in the package). */
export function defaultModelUrl(): URL;

/**
 * The published GPT-2 checkpoints {@link download} knows by name, and their Hugging Face
 * repositories: `gpt2` → `openai-community/gpt2` (also `-medium`, `-large`, `-xl`),
 * `distilgpt2` → `distilbert/distilgpt2`.
 */
export type ModelName = 'gpt2' | 'gpt2-medium' | 'gpt2-large' | 'gpt2-xl' | 'distilgpt2';

/** A progress event of {@link download}: bytes on disk (`'download'`, many), then `'done'` once. */
export type ModelDownloadProgress = ModelDownloadFileProgress | ModelDownloadDone;

/** Some bytes of one file have been written (or found already on disk). */
export interface ModelDownloadFileProgress {
  /** Downloading. */
  readonly phase: 'download';
  /** The file being downloaded; in the order config, vocab, merges, weights. */
  readonly file: ModelFileName;
  /** Bytes of the four files on disk so far, including those kept from an earlier, interrupted run. */
  readonly loaded: number;
  /** Total bytes of the four files, or `undefined` when the server did not tell every size. */
  readonly total: number | undefined;
  /** Bytes of this file on disk so far. */
  readonly fileLoaded: number;
  /** This file's size, or `undefined` while unknown. */
  readonly fileTotal: number | undefined;
  /** Bytes received over the network by this call (`loaded` minus what was already on disk). */
  readonly transferred: number;
}

/** All four files are in place; sent once, just before `download()` resolves. */
export interface ModelDownloadDone {
  /** Finished. */
  readonly phase: 'done';
  /** Always `null`. */
  readonly file: null;
  /** Bytes of the four files. */
  readonly loaded: number;
  /** The same as `loaded`. */
  readonly total: number;
  /** Bytes received over the network by this call (0 when every file was already there). */
  readonly transferred: number;
}

/** Options of {@link download}. */
export interface DownloadOptions {
  /** The folder to put the files in (created if needed); default: the repository's name (`./gpt2`) in the working directory. */
  dir?: string | undefined;
  /**
   * The Hugging Face Hub or a mirror of it: files are fetched from
   * `BASE/OWNER/NAME/resolve/REVISION/FILE`. Default: the `GPT2_WASM_BASE_URL` environment
   * variable, else `https://huggingface.co`.
   */
  baseUrl?: string | undefined;
  /** Branch, tag or commit of the repository (default `'main'`). */
  revision?: string | undefined;
  /** Called as bytes arrive (`phase: 'download'`) and once at the end (`phase: 'done'`). */
  onProgress?: ((progress: ModelDownloadProgress) => void) | undefined;
  /**
   * Stops the download; `download()` then rejects with the signal's reason or a `DOMException`
   * `'AbortError'`. The partial file (`FILE.part`) is kept, and the next call continues it.
   */
  signal?: AbortSignal | undefined;
  /** The `fetch` used (default: `globalThis.fetch`). */
  fetch?: typeof globalThis.fetch | undefined;
  /** Milliseconds to wait for an answer, and for each next chunk of a body (default 30000). */
  timeout?: number | undefined;
  /** How many times a file is continued after its connection fails mid-way or the server answers 5xx (default 3). */
  retries?: number | undefined;
  /** Milliseconds before the first retry; doubled for each next one, up to 8 s (default 500). */
  retryDelay?: number | undefined;
}

/**
 * Node only: downloads a checkpoint from the Hugging Face Hub (`config.json`, `vocab.json`,
 * `merges.txt`, `model.safetensors`) into a folder, for {@link load}:
 *
 *     const model = await load(await download('distilgpt2', { dir: 'models/distilgpt2' }));
 *
 * Each file is written to `FILE.part` and renamed when complete, so the folder never holds a
 * half-written file. A `.part` left by an interrupted download is continued with an HTTP
 * Range request (a server that ignores Range sends the whole file again). Every file's size
 * is checked (`X-Linked-Size`, `Content-Length`, `Content-Range`), and its SHA-256 when the
 * server gives one (the Hub's `X-Linked-Etag`); a file that fails the check is deleted.
 * Files already in the folder that match the server's are kept.
 *
 * @param name a {@link ModelName}, or a Hugging Face repository id `'owner/name'` (a fine-tune).
 * @returns the folder's absolute path.
 * @throws {Gpt2Error} `'arg'` for an unknown name or bad option; `'io'` for an unreachable
 *   server (the message names the URL and how to use a mirror), an unknown model or missing
 *   file, an HTTP error, or a file that fails verification; a `DOMException` `'AbortError'`
 *   when `options.signal` aborts.
 */
export function download(name: ModelName | (string & {}), options?: DownloadOptions): Promise<string>;

/** A model's hyper-parameters (from `config.json`). */
export interface ModelConfig {
  /** Number of transformer blocks. */
  readonly nLayer: number;
  /** Attention heads per block. */
  readonly nHead: number;
  /** Width of the embeddings and the residual stream. */
  readonly nEmbd: number;
  /** Context length: the most tokens (prompt + generated) the model can see. */
  readonly nCtx: number;
  /** Vocabulary size; valid token ids are `0 .. nVocab - 1`. */
  readonly nVocab: number;
  /** Width of the MLP's hidden layer (usually `4 * nEmbd`). */
  readonly nInner: number;
  /** `true` when the output head has its own weights; `false` when tied to the token embeddings. */
  readonly untiedHead: boolean;
}

/** A storage precision of weights ({@link LoadOptions.precision}); `'auto'` = as stored if it fits. */
export type Precision = 'auto' | 'f32' | 'f16' | 'q8_0';

/** A precision weights are actually stored in. */
export type StoragePrecision = 'f32' | 'f16' | 'q8_0';

/** Facts about a loaded model. */
export interface ModelInfo {
  /** Where the model came from: the folder path, the folder URL, or `'objects'`. */
  readonly source: string;
  /** Seconds from the call of `load()` to the model being ready (files read and converted). */
  readonly loadSeconds: number;
  /** How many parameters the model has (a head tied to the token embedding counted once). */
  readonly parameters: number;
  /** Bytes of WebAssembly memory the weights take (in their storage precision). */
  readonly weightsBytes: number;
  /** The precision most of the linear weights are stored in. */
  readonly precision: StoragePrecision;
  /**
   * Why: `'f32 as asked'`, `'auto: f16 as stored (fits the memory budget)'`, or when the file's
   * precision does not fit, e.g. `'auto: f16, because f32 as stored needs 4.5 GB but the memory
   * budget is 4.3 GB (f16 needs 2.5 GB)'`.
   */
  readonly precisionReason: string;
  /**
   * Per kind of weight matrix (`lmHead` is `wte`'s when the head is tied). Under `'q8_0'`, a
   * matrix whose input width is not a multiple of 32 is stored in f16.
   */
  readonly matrixPrecision: {
    readonly wte: StoragePrecision;
    readonly lmHead: StoragePrecision;
    readonly qkv: StoragePrecision;
    readonly attnProj: StoragePrecision;
    readonly fc: StoragePrecision;
    readonly mlpProj: StoragePrecision;
  };
  /** Threads the forward pass runs on (1 in the single-thread build). */
  readonly threads: number;
  /**
   * The WebAssembly build in use: `'wasm-simd'` (single thread, runs everywhere) or
   * `'wasm-simd-threads'` (Emscripten pthreads: Node, or a cross-origin-isolated worker).
   */
  readonly build: 'wasm-simd' | 'wasm-simd-threads';
  /**
   * Set when threads were asked for (or chosen by `'auto'`) but the threaded build could not
   * start, so the single-thread build runs: why (e.g. its pthread workers' script is on
   * another origin, which browsers do not allow for workers).
   */
  readonly threadsFallback?: string;
}

/** Token ids: a plain array or an integer typed array. */
export type TokenIds = readonly number[] | Int32Array | Uint32Array | Uint16Array | Uint8Array;

/** Options of {@link Gpt2Model.tokenize} and {@link Gpt2Model.score}. */
export interface TokenizeOptions {
  /**
   * Treat `'<|endoftext|>'` in the text as the special end-of-text token ({@link Gpt2Model.eotId}).
   * Default `false`: it is ordinary text, tokenized into several tokens.
   */
  special?: boolean | undefined;
}

/** Options of {@link Gpt2Model.generate}. Invalid values and unknown option names throw a {@link Gpt2Error} `'arg'` from `generate()`. */
export interface GenerateOptions {
  /** The most new tokens to generate; a whole number >= 0 (default 64). */
  maxTokens?: number | undefined;
  /** Sampling temperature, >= 0; 0 = greedy, always the most likely token (default 1). */
  temperature?: number | undefined;
  /** Sample only among the K most likely tokens; a whole number >= 0, 0 = off (default 0). */
  topK?: number | undefined;
  /** Nucleus sampling: the smallest set of tokens whose probability reaches P; in (0, 1], 1 = off (default 1). */
  topP?: number | undefined;
  /** Divides the logits of tokens already present (prompt and output) by this; > 0, 1 = off (default 1). */
  repetitionPenalty?: number | undefined;
  /** Random seed; a whole number >= 0 (default 0). The same seed and options give the same text. */
  seed?: number | undefined;
  /**
   * Stop before any of these texts (at most 8, non-empty); the stop text itself is not returned,
   * and `stopReason` is `'stop_sequence'`.
   */
  stop?: string | readonly string[] | undefined;
  /** Keep generating after the end-of-text token instead of stopping (default `false`). */
  ignoreEot?: boolean | undefined;
  /** Treat `'<|endoftext|>'` in a string prompt as the special token (default `false`). */
  special?: boolean | undefined;
  /**
   * Added to the logits of these token ids before sampling (before the repetition penalty,
   * temperature, top-k and top-p), e.g. `{ [model.tokenize(' the')[0]]: -5 }`. `-Infinity`
   * bans a token; a large value (e.g. `1e9`) forces it. Values must be finite or `-Infinity`
   * ({@link Gpt2Error} `'arg'`); ids outside the vocabulary: `'range'`. A `Map` works too.
   */
  logitBias?: { readonly [tokenId: number]: number } | ReadonlyMap<number, number> | undefined;
  /**
   * Words never to produce. Rule (on the bytes of the text, src/generate.h): a token is banned
   * when it would complete an occurrence of a banned word that starts at a word start (the
   * start of the text, or after a byte that is not an ASCII letter/digit or part of a
   * non-ASCII character). So both `" word"` and `"word"` are banned however they would be
   * tokenized, a word already begun (in the prompt or session) is not completed, words that
   * begin with it (`"cats"` for `"cat"`) are banned too, and words that only contain it
   * later (`"concat"`) are not. Case-sensitive: ban `"Cat"` separately.
   */
  bannedWords?: string | readonly string[] | undefined;
  /**
   * What happens when the context (`config.nCtx` tokens) is full. `'slide'` (default): keep the
   * most recent `slideKeep` tokens, recompute their cache at positions 0.., and go on, so a
   * generation can be longer than the context. `'stop'`: end with stopReason `'context_full'`.
   */
  contextPolicy?: 'slide' | 'stop' | undefined;
  /** Tokens a slide keeps, 1 .. nCtx - 1; 0 or absent: half the context. */
  slideKeep?: number | undefined;
  /**
   * A prompt longer than the context: `'left'` (default) drops its oldest tokens, keeping the last
   * `max(nCtx - maxTokens, nCtx / 2)`, and says so in `summary.warnings`; `'error'` throws
   * a {@link Gpt2Error} `'range'` instead.
   */
  truncatePrompt?: 'left' | 'error' | undefined;
  /**
   * Stops the generation before the next token: the iterator then throws the signal's reason (or
   * a `DOMException` `'AbortError'`) and `summary` rejects with it. (Leaving a `for await` loop
   * with `break` instead ends it with `stopReason: 'cancelled'`.)
   */
  signal?: AbortSignal | undefined;
  /**
   * Speculative decoding: this smaller (or q8_0) model, loaded with `load(source, { into: model })`
   * and with the same vocabulary, proposes `draftTokens` tokens per round and the model checks
   * them all in one batched pass. Greedy (`temperature: 0`): the text is exactly the greedy
   * text without a draft. Sampling: every option applies to both models' distributions, and
   * proposals are kept by the speculative sampling rule, so each token has exactly the
   * model's own distribution; a `seed` fixes the text (not the text that seed gives without a
   * draft). Default: the model's own draft (load's `draft`, {@link Gpt2Model.draft});
   * `null`: none. `summary.speculative` reports the acceptance.
   */
  draft?: Gpt2Model | null | undefined;
  /** Tokens the draft proposes per round, 1..16 (default: load's `draftTokens`, else 4); only with a draft. */
  draftTokens?: number | undefined;
}

/** One step of a generation. */
export interface Piece {
  /**
   * New text. May be `''` while a multi-byte UTF-8 character is incomplete (it is completed by a
   * later piece); bytes that never form valid UTF-8 become U+FFFD.
   */
  readonly text: string;
  /**
   * The token generated, or `null` for a final piece that only carries text held back until the end.
   * When generation stops at `<|endoftext|>`, the last piece is `{ text: '', token: eotId }` (and
   * `summary.tokens` counts it), as in the C core.
   */
  readonly token: number | null;
}

/** Why a generation ended. */
export type StopReason =
  /** `maxTokens` new tokens were generated. */
  | 'max_tokens'
  /** The model produced the end-of-text token (and `ignoreEot` was not set). */
  | 'eot'
  /** One of the `stop` texts was produced. */
  | 'stop_sequence'
  /** The context (`config.nCtx` tokens) is full. */
  | 'context_full'
  /** The iteration was ended early (`break` in `for await`, or `return()`). */
  | 'cancelled';

/** Timings of a generation, in milliseconds from its first step. */
export interface GenerationTimings {
  /** Time to the first new token (includes running the prompt); 0 if nothing ran. */
  readonly firstTokenMs: number;
  /** Time until the generation ended. */
  readonly totalMs: number;
  /** New tokens per second after the first one, or `null` with fewer than 2 tokens. */
  readonly tokensPerSecond: number | null;
}

/** The outcome of a generation, available once it has ended. */
export interface GenerationSummary {
  /** New tokens generated. */
  readonly tokens: number;
  /** Tokens in the prompt (an empty prompt counts as one end-of-text token). */
  readonly promptTokens: number;
  /** Prompt tokens dropped because the prompt was longer than the context (see `truncatePrompt`). */
  readonly truncatedTokens: number;
  /** How many times the context was full and slid (see `contextPolicy`). */
  readonly slides: number;
  /** Things the caller should know, e.g. that the prompt was truncated. */
  readonly warnings: readonly string[];
  /** Why it ended. */
  readonly stopReason: StopReason;
  /** All the text generated (the pieces' text joined; without the prompt). */
  readonly text: string;
  /**
   * With a draft ({@link GenerateOptions.draft}): draft tokens the model checked (`proposed`),
   * those it kept (`accepted`), and `rate` = accepted / proposed (`null` when none were proposed).
   */
  readonly speculative?: { readonly proposed: number; readonly accepted: number; readonly rate: number | null };
  /** How long it took. */
  readonly timings: GenerationTimings;
}

/**
 * One generation, started by {@link Gpt2Model.generate}: an async iterator of {@link Piece}s,
 * computed one token per `next()` call (the model does nothing until iterated). Iterate it once.
 */
export interface Generation extends AsyncIterableIterator<Piece> {
  /**
   * Settles when the iteration ends: resolves with the summary, or rejects with the error the
   * iterator threw (a prompt longer than the context: {@link Gpt2Error} `'range'`; an abort:
   * the signal's reason). It never settles if the generation is neither finished nor ended.
   */
  readonly summary: Promise<GenerationSummary>;
  /** Computes the next token; `{ done: true }` once the generation has ended. */
  next(): Promise<IteratorResult<Piece, undefined>>;
  /** Ends the generation early (what `break` in `for await` calls): `stopReason` becomes `'cancelled'`. */
  return(): Promise<IteratorReturnResult<undefined>>;
  /** The generation itself. */
  [Symbol.asyncIterator](): Generation;
}

/** One of the most likely tokens at a position ({@link ScoredToken.alternatives}). */
export interface Alternative {
  /** The token id. */
  readonly id: number;
  /** The token's own text (`detokenize([id])`: U+FFFD for a part of a multi-byte character). */
  readonly text: string;
  /** Natural log of its probability at that position. */
  readonly logprob: number;
}

/** One token of a scored text. */
export interface ScoredToken {
  /** The token id. */
  readonly id: number;
  /**
   * The part of the input this token completes: decoding the tokens in order, each character
   * belongs to the token holding its last byte (the rule of generation's pieces), so a token
   * that holds only the first bytes of a character has `''`. The tokens' texts joined give back
   * the input (for token ids: `detokenize(ids)`).
   */
  readonly text: string;
  /** Natural log of its probability given the tokens before it; `null` for the first token. */
  readonly logprob: number | null;
  /** How many tokens the model found more likely at that position (0 = the top choice); `null` for the first token. */
  readonly rank: number | null;
  /**
   * The `topK` most likely tokens at that position, most likely first (equal logits: lower id
   * first); `[]` for the first token.
   */
  readonly alternatives: Alternative[];
}

/** Options of {@link Gpt2Model.score}. */
export interface ScoreOptions extends TokenizeOptions {
  /** How many alternatives to list per token; a whole number from 0 to `config.nVocab` (default 5). */
  topK?: number | undefined;
}

/** Options of {@link Gpt2Model.rank}. */
export interface RankOptions extends TokenizeOptions {
  /** Sort by the mean log-probability per token (`'mean'`, default) or by the total (`'sum'`). */
  by?: 'mean' | 'sum' | undefined;
}

/** One choice ranked by {@link Gpt2Model.rank}. */
export interface RankResult {
  /** The choice's text. */
  readonly choice: string;
  /** Its index in the `choices` given. */
  readonly index: number;
  /** Sum of the log-probabilities of its tokens after the prompt. */
  readonly logprob: number;
  /** `logprob / tokens`. */
  readonly meanLogprob: number;
  /** How many tokens were scored. */
  readonly tokens: number;
}

/**
 * A token sequence with its own KV cache, made by {@link Gpt2Model.session}: each call
 * computes only the tokens it adds, so its cost does not grow with the history (beyond
 * attention over it). Disposed with its model. While a generation runs in it, other calls
 * throw {@link Gpt2Error} `'arg'`.
 */
export interface Session {
  /** Number of tokens in the session (the position of the next token). */
  readonly position: number;
  /** A copy of the session's token ids. */
  readonly tokens: number[];
  /** The session's text (`detokenize(tokens)`). */
  readonly text: string;
  /** Tokens this session has run through the model since it was made (a fork starts at 0); for measurements. */
  readonly computedTokens: number;
  /** `true` after {@link dispose} (or the model's). */
  readonly disposed: boolean;
  /**
   * Appends text (tokenized on its own, not merged with the tokens before it) or token ids and
   * runs them through the model. Returns the ids appended.
   * @throws {Gpt2Error} `'range'` for a bad id or when the context would overflow (nothing is appended).
   */
  append(input: string | TokenIds, options?: TokenizeOptions): number[];
  /**
   * Generates from the end of the session (an empty session starts from `<|endoftext|>`),
   * appending the generated tokens to it (also those of a cancelled generation).
   * `summary.promptTokens` is the session's length at the start.
   */
  generate(options?: GenerateOptions): Generation;
  /** A new session with the same tokens and a copy of the KV cache; nothing is recomputed. */
  fork(): Session;
  /**
   * Keeps the first `position` tokens and forgets the rest; the next call recomputes one token.
   * @throws {Gpt2Error} `'range'` unless `0 <= position <= this.position`.
   */
  rewind(position: number): void;
  /** Frees the session's memory (cancels a generation running in it). Safe to call twice. */
  dispose(): void;
}

/** The result of {@link Gpt2Model.score}. */
export interface ScoreResult {
  /** Every token of the input, in order. */
  readonly tokens: ScoredToken[];
  /** Sum of the tokens' log-probabilities (all but the first token). */
  readonly totalLogprob: number;
  /** `exp(-totalLogprob / (tokens.length - 1))`, or `null` for a single token. */
  readonly perplexity: number | null;
}

/**
 * A loaded model, made by {@link load}. It owns WebAssembly memory: call {@link dispose} when done.
 * Methods throw {@link Gpt2Error} `'arg'` once the model is disposed.
 */
export class Gpt2Model {
  /** Models are made by {@link load}. */
  private constructor();
  /** The model's hyper-parameters. */
  readonly config: Readonly<ModelConfig>;
  /** Where it came from, how long it took to load, how much memory the weights take. */
  readonly info: Readonly<ModelInfo>;
  /** The id of the end-of-text token `<|endoftext|>`. */
  readonly eotId: number;
  /** `true` after {@link dispose}. */
  readonly disposed: boolean;
  /** The draft generate uses by default ({@link LoadOptions.draft}), or `null`. */
  readonly draft: Gpt2Model | null;
  /** Its tokens per round ({@link LoadOptions.draftTokens}), or `null` for the default (4). */
  readonly draftTokens: number | null;
  /**
   * The token ids of a text (GPT-2's byte-level BPE).
   * @throws {Gpt2Error} `'arg'` when text is not a string.
   */
  tokenize(text: string, options?: TokenizeOptions): number[];
  /**
   * The text of token ids; bytes that do not form UTF-8 become U+FFFD.
   * @throws {Gpt2Error} `'range'` for an id outside `0 .. config.nVocab - 1`.
   */
  detokenize(ids: TokenIds): string;
  /**
   * The logits (unnormalized log-probabilities, `config.nVocab` of them) of the next token after `ids`.
   * @throws {Gpt2Error} `'arg'` for no ids, `'range'` for a bad id or more ids than `config.nCtx`.
   */
  logits(ids: TokenIds): Float32Array;
  /**
   * Each token's log-probability and rank under the model, and the perplexity.
   * @param text a string (tokenized first) or token ids; at most `config.nCtx` tokens.
   * @throws {Gpt2Error} `'arg'` for an empty text, `'range'` for a bad id or too many tokens.
   */
  score(text: string | TokenIds, options?: ScoreOptions): ScoreResult;
  /**
   * Zero-shot ranking (the GPT-2 paper's method): scores each choice as a continuation of the
   * prompt and returns them best first (ties: lower index first). A choice is scored on the
   * tokens of `prompt + choice` after the longest run of tokens they share with the prompt's
   * own tokens (a word merged across the boundary is scored whole); with none shared (an
   * empty prompt) it is conditioned on `<|endoftext|>`.
   *
   *     model.rank('Review: a wonderful film. Sentiment:', [' positive', ' negative'])[0].choice
   *
   * @throws {Gpt2Error} `'arg'` for no choices, a choice that adds no tokens or a bad `by`.
   */
  rank(prompt: string, choices: readonly string[], options?: RankOptions): RankResult[];
  /** A new, empty {@link Session} (its own KV cache in this model's memory). */
  session(): Session;
  /**
   * The text each token completes when `ids` are decoded in order (the rule of
   * {@link ScoredToken.text}); joined, they equal `detokenize(ids)`.
   */
  tokenTexts(ids: TokenIds): string[];
  /**
   * Generates a continuation of a prompt, token by token:
   *
   *     const gen = model.generate('Hello', { maxTokens: 20, temperature: 0.8, seed: 1 });
   *     for await (const piece of gen) process.stdout.write(piece.text);
   *     const { stopReason, timings } = await gen.summary;
   *
   * An empty prompt starts from the end-of-text token.
   * @param prompt text, or token ids.
   * @throws {Gpt2Error} `'arg'` right away for invalid options; errors about the prompt itself
   *   (too long for the context: `'range'`) come from the first `next()`.
   */
  generate(prompt: string | TokenIds, options?: GenerateOptions): Generation;
  /**
   * Fine-tunes the model in place (rules: src/train.h), one item per optimiser step:
   *
   *     for await (const s of model.finetune(myText, { steps: 50, seq: 64, lr: 1e-4 })) console.log(s.step, s.loss);
   *
   * When the iteration ends (all steps, `break`, `signal` aborted, or an error) the trained
   * weights are in the model, in its precision: `generate`, `score` and `rank` use them.
   * @throws {Gpt2Error} from the first `next()`, before any step: `'arg'` for an empty or too
   *   short text, an unknown option or a bad value (`lr <= 0` ...), `'range'` for `seq` over
   *   the context or a bad id, `'nomem'` naming a batch x seq that would fit; `'range'` during
   *   training for a NaN or infinite loss. Aborting rejects with an `AbortError`.
   */
  finetune(textOrIds: string | TokenIds, options?: FinetuneOptions): AsyncGenerator<FinetuneStep, void, undefined>;
  /**
   * The model as a Hugging Face folder (`config.json`, `model.safetensors`, `vocab.json`,
   * `merges.txt`): written to `dir` (Node; resolves to the paths), or returned as bytes.
   */
  save(): Promise<Record<'config.json' | 'model.safetensors' | 'vocab.json' | 'merges.txt', Uint8Array>>;
  save(dir: string, options?: { dtype?: 'f32' | 'f16' }): Promise<string[]>;
  save(dir: undefined, options: { dtype?: 'f32' | 'f16' }): Promise<Record<'config.json' | 'model.safetensors' | 'vocab.json' | 'merges.txt', Uint8Array>>;
  /** Frees the model's WebAssembly memory (and its sessions'); the model cannot be used afterwards. Safe to call twice. */
  dispose(): void;
}

/** Options of {@link Gpt2Model.finetune} (defaults in brackets). */
export interface FinetuneOptions {
  /** Optimiser steps [100]. */
  steps?: number;
  /** Sequences per micro-batch [4]. */
  batch?: number;
  /** Tokens per sequence, at most `config.nCtx` [64]. */
  seq?: number;
  /** Micro-batches per step (gradient accumulation) [1]. */
  gradAccum?: number;
  /** Learning rate > 0 [1e-4]. */
  lr?: number;
  optimizer?: 'adamw' | 'sgd';
  /** On the matrices and wte only [0]. */
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Clip the gradients' global norm; 0 = off [1]. */
  gradClip?: number;
  /** Steps of linear warm-up [0]. */
  warmup?: number;
  /** After warm-up: constant, or cosine to 0 at `steps` ['constant']. */
  schedule?: 'constant' | 'cosine';
  /** `false` (windows in order) or a seed [false]. */
  shuffle?: false | number;
  /** Hold out the last fraction of the text, 0 <= f < 1 [0]. */
  valFraction?: number;
  /** Evaluate the held-out part every K steps (and after the last) [0: only after the last]. */
  evalEvery?: number;
  /**
   * Continue from a checkpoint (the bytes of {@link FinetuneStep.checkpoint}, or of the native
   * `gpt2 finetune`'s finetune-state.bin): training resumes after its step, up to `steps` in
   * all, exactly as if never interrupted (same text and options). Another model's or
   * optimizer's checkpoint, or damaged bytes, are refused (`'shape'`, `'arg'`, `'format'`)
   * before anything changes.
   */
  resume?: Uint8Array;
  /** Every K-th step and the last carry a `checkpoint`, and the model then holds that step's weights [0: none]. */
  checkpointEvery?: number;
  /** Stops at the next step boundary. */
  signal?: AbortSignal;
}

/** One optimiser step of {@link Gpt2Model.finetune}. */
export interface FinetuneStep {
  step: number;
  /** Mean loss of the step's batch (before its update). */
  loss: number;
  /** Held-out loss, on evaluation steps. */
  valLoss?: number;
  lr: number;
  /** Gradient norm before clipping. */
  gradNorm: number;
  tokensPerSecond: number;
  /** With `checkpointEvery`: the resumable state after this step (pass it as `resume`). */
  checkpoint?: Uint8Array;
}

/** The API in a Web Worker ('gpt2-wasm/browser'), declared in js/browser/index.d.ts. */
export type { RemoteGeneration, RemoteModel, RemoteSession } from './browser/index.js';

/** The `code` of a {@link Gpt2Error}: the C core's status names (src/status.h). */
export type Gpt2ErrorCode =
  /** A file could not be read or downloaded. */
  | 'io'
  /** A file is malformed (JSON, safetensors header, merges, UTF-8). */
  | 'format'
  /** A tensor's shape or the config does not match GPT-2's. */
  | 'shape'
  /** A valid but unsupported checkpoint (e.g. an activation or dtype this build lacks). */
  | 'unsupported'
  /** Out of WebAssembly memory, or over `memoryBudget`. */
  | 'nomem'
  /**
   * A bad argument: an option value, an unknown option name ("unknown option 'maxtokens' (did
   * you mean 'maxTokens'?)"), a disposed model, a missing file in an object source, ...
   */
  | 'arg'
  /** A value out of range: a token id outside the vocabulary, more tokens than the context holds. */
  | 'range'
  /** An operation was aborted inside the core. */
  | 'aborted'
  /** A status code this version does not know. */
  | 'unknown';

/** An error reported by gpt2-wasm, with a machine-readable {@link code}. */
export class Gpt2Error extends Error {
  /** @param message what went wrong, for people. @param code what went wrong, for programs. */
  constructor(message: string, code: Gpt2ErrorCode);
  /** Always `'Gpt2Error'`. */
  readonly name: 'Gpt2Error';
  /** What kind of failure it is. */
  readonly code: Gpt2ErrorCode;
}
