// options.js - the option names of every public function that takes an options object, and
// the one check that rejects a key not among them (a misspelled option would otherwise be
// ignored: `{ maxtokens: 3 }` would generate the default 64 tokens). Every function that takes
// an options object calls checkOptions first, with its entry of OPTION_NAMES.
import { Gpt2Error } from './errors.js';

/**
 * Option names by function, as documented in index.d.ts (LoadOptions, TokenizeOptions,
 * ScoreOptions, RankOptions, GenerateOptions, DownloadOptions, FinetuneOptions) and browser/index.d.ts
 * (BrowserLoadOptions: loadInWorker).
 * `generate` is shared by `model.generate` and `session.generate`; `append` is `session.append`.
 */
export const OPTION_NAMES = Object.freeze({
  load: Object.freeze(['onProgress', 'signal', 'memoryBudget', 'precision', 'fetch', 'wasmUrl', 'assetsUrl', 'threads', 'into',
    'draft', 'draftTokens', 'draftPrecision']),
  loadInWorker: Object.freeze(['onProgress', 'signal', 'memoryBudget', 'precision', 'cache', 'workerUrl', 'assetsUrl', 'threads', 'into']),
  planInWorker: Object.freeze(['signal', 'memoryBudget', 'precision', 'workerUrl', 'assetsUrl']),
  tokenize: Object.freeze(['special']),
  score: Object.freeze(['special', 'topK']),
  rank: Object.freeze(['by', 'special']),
  append: Object.freeze(['special']),
  generate: Object.freeze([
    'maxTokens', 'temperature', 'topK', 'topP', 'repetitionPenalty', 'seed', 'stop', 'ignoreEot', 'special',
    'logitBias', 'bannedWords', 'contextPolicy', 'slideKeep', 'truncatePrompt', 'signal', 'draft', 'draftTokens',
  ]),
  download: Object.freeze(['dir', 'baseUrl', 'revision', 'onProgress', 'signal', 'fetch', 'timeout', 'retries', 'retryDelay']),
  quantize: Object.freeze(['type', 'onProgress']),
  finetune: Object.freeze([
    'steps', 'batch', 'seq', 'gradAccum', 'lr', 'optimizer', 'weightDecay', 'beta1', 'beta2', 'eps', 'gradClip',
    'warmup', 'schedule', 'shuffle', 'valFraction', 'evalEvery', 'resume', 'checkpointEvery', 'signal',
  ]),
});

/**
 * Checks an options argument: undefined or null (no options), or an object whose own
 * enumerable keys are all in `names`. Values are not checked here (each function does that).
 * @template {object} T
 * @param {T | undefined | null} options
 * @param {readonly string[]} names the function's option names (an OPTION_NAMES entry)
 * @returns {T | {}} options, or {} for undefined / null
 * @throws {Gpt2Error} 'arg': "options must be an object, got ...", or "unknown option 'maxtokens'
 *   (did you mean 'maxTokens'?)"; when no name is close, the message lists the valid ones
 */
export function checkOptions(options, names) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    const got = Array.isArray(options) ? 'an array' : `${typeof options} ${String(options)}`;
    throw new Gpt2Error(`options must be an object, got ${got}`, 'arg');
  }
  for (const key of Object.keys(options)) {
    if (!names.includes(key)) throw new Gpt2Error(unknownOptionMessage(key, names), 'arg');
  }
  return options;
}

/** "unknown option 'KEY' (did you mean 'NAME'?)", or "(valid options: A, B)" when none is close. */
function unknownOptionMessage(key, names) {
  const near = closest(key, names);
  const hint = near ? `did you mean '${near}'?` : `valid options: ${names.join(', ')}`;
  return `unknown option '${key}' (${hint})`;
}

/**
 * The name nearest to key by edit distance, ignoring case (insertions, deletions,
 * substitutions and swaps of neighbours cost 1; first in `names` on a tie), if it is within
 * max(2, a third of key's length); else undefined.
 * @param {string} key @param {readonly string[]} names
 */
export function closest(key, names) {
  let best, bestDistance = Infinity;
  for (const name of names) {
    const d = editDistance(key.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** Optimal-string-alignment distance (Levenshtein plus adjacent transpositions). */
function editDistance(a, b) {
  // rows[i][j]: distance between a's first i and b's first j characters
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i][j] = d;
    }
  }
  return rows[a.length][b.length];
}
