// Type declarations for gpt2-wasm: GPT-2 text generation in WebAssembly, for Node and browsers.
//
//   import { load } from 'gpt2-wasm';
//   const model = await load();                      // the embedded model, or a URL / folder
//   for await (const { text } of model.generate('Once upon a time', { maxTokens: 40 }))
//     process.stdout.write(text);
//
// These declarations describe js/index.js and the modules it re-exports (load.js, model.js,
// errors.js, sources.js); keep them in step with the code.

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
   * The most bytes the float32 weights may take; a larger checkpoint is rejected with
   * {@link Gpt2Error} `'nomem'` as soon as `config.json` (or the safetensors header) is read,
   * before the weights are downloaded. 0 or absent: no limit.
   */
  memoryBudget?: number | undefined;
  /** The `fetch` used for URL sources (default: `globalThis.fetch`), e.g. to add headers or a cache. */
  fetch?: typeof globalThis.fetch | undefined;
  /** Where `gpt2.wasm` is (default: `dist/gpt2.wasm` of this package); relative to `dist/gpt2.mjs`. */
  wasmUrl?: string | URL | undefined;
}

/**
 * Loads a GPT-2 checkpoint (Hugging Face layout: `config.json`, `vocab.json`, `merges.txt`,
 * `model.safetensors` in float32, float16 or bfloat16) into a new WebAssembly instance. The
 * weights are streamed straight into WebAssembly memory as they arrive.
 *
 * @param source the checkpoint; absent, `undefined` or `null`: the small model embedded in the
 *   package ({@link defaultModelUrl}).
 * @throws {Gpt2Error} unreadable or invalid files (`'io'`, `'format'`, `'shape'`, `'unsupported'`,
 *   `'nomem'`, `'arg'`); a `DOMException` `'AbortError'` when `options.signal` aborts; a plain
 *   `Error` when `dist/gpt2.mjs` cannot be loaded (`npm run build` not run).
 */
export function load(source?: ModelSource | null, options?: LoadOptions): Promise<Gpt2Model>;

/** The URL of the embedded model's folder (`models/` in the package). */
export function defaultModelUrl(): URL;

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

/** Facts about a loaded model. */
export interface ModelInfo {
  /** Where the model came from: the folder path, the folder URL, or `'objects'`. */
  readonly source: string;
  /** Seconds from the call of `load()` to the model being ready (files read and converted). */
  readonly loadSeconds: number;
  /** Bytes of WebAssembly memory the float32 weights take. */
  readonly weightsBytes: number;
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

/** Options of {@link Gpt2Model.generate}. Invalid values throw a {@link Gpt2Error} `'arg'` from `generate()`. */
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
   * Stops the generation before the next token: the iterator then throws the signal's reason (or
   * a `DOMException` `'AbortError'`) and `summary` rejects with it. (Leaving a `for await` loop
   * with `break` instead ends it with `stopReason: 'cancelled'`.)
   */
  signal?: AbortSignal | undefined;
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
  /** Why it ended. */
  readonly stopReason: StopReason;
  /** All the text generated (the pieces' text joined; without the prompt). */
  readonly text: string;
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

/** One token of a scored text. */
export interface ScoredToken {
  /** The token id. */
  readonly id: number;
  /** Its text (U+FFFD for bytes that are not complete UTF-8 on their own). */
  readonly text: string;
  /** Natural log of its probability given the tokens before it; `null` for the first token. */
  readonly logprob: number | null;
  /** How many tokens the model found more likely at that position (0 = the top choice); `null` for the first token. */
  readonly rank: number | null;
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
  score(text: string | TokenIds, options?: TokenizeOptions): ScoreResult;
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
  /** Frees the model's WebAssembly memory; the model cannot be used afterwards. Safe to call twice. */
  dispose(): void;
}

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
  /** A bad argument (option value, disposed model, missing file in an object source, ...). */
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
