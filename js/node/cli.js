#!/usr/bin/env node
// cli.js - the Node command-line tool `gpt2-wasm`, the WebAssembly twin of the native `gpt2`
// (cli/main.c): same commands, same option names, same output formats. Just over 600 lines
// because it holds every command's options and usage text in one table, as cli/main.c does.
//
//   gpt2-wasm "Once upon a time"                       generate from the embedded model
//   gpt2-wasm generate --model DIR_OR_URL --prompt TEXT [sampling options]
//   gpt2-wasm tokenize | detokenize | logits | score | info [options]
//   gpt2-wasm quantize IN_DIR OUT_DIR --type q8_0|f16
//   gpt2-wasm finetune --data FILE --out DIR [training options]   (finetune_cli.js)
//   gpt2-wasm download gpt2|gpt2-medium|gpt2-large|gpt2-xl|distilgpt2|OWNER/NAME [--dir D] [--base-url URL]
//
// Errors are one line on stderr ("gpt2-wasm: ...") and exit status 1 (2 for usage errors).
// Ctrl-C stops a generation cleanly (exit status 130). No dependencies.
import { readFileSync } from 'node:fs';
import { relative, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load, Gpt2Error } from '../index.js';
import { ProgressBar } from './progress.js';
import { download, resolveRepo } from './download.js';
import { MODEL_REPOS } from '../sources.js';
import { quantizeFolder } from './quantize.js';
import { closest } from '../options.js';
import { GENERATE_DEFAULTS, LIMITS, PRECISIONS } from '../constants.js';
import { FINETUNE_OPTIONS, FINETUNE_USAGE, finetuneCommand } from './finetune_cli.js';

const PROGRAM = 'gpt2-wasm';
const COMMANDS = ['generate', 'tokenize', 'detokenize', 'logits', 'score', 'info', 'download', 'quantize', 'finetune'];
const MAX_STOP = LIMITS.maxStopSequences;

const USAGE = `usage: ${PROGRAM} [generate] [options] [PROMPT...]
       ${PROGRAM} COMMAND [options]
commands:
  generate    continue a prompt, streaming text to stdout (the default: a bare
              PROMPT argument means "generate PROMPT")
  tokenize    print the token ids of the text (--prompt, arguments, or stdin)
  detokenize  print the text of token ids (--ids, arguments, or stdin)
  logits      print the logits of the last position, one per line
  score       print each token's log-probability and rank, and the perplexity
  info        print the model's configuration and memory use
  download    download NAME from the Hugging Face Hub into a folder and print the
              folder: gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2, or a
              repository id OWNER/NAME; an interrupted download resumes
  quantize    quantize IN_DIR OUT_DIR --type q8_0|f16: write a converted copy of a
              checkpoint folder (docs/quantized-format.md)
${FINETUNE_USAGE}options:
  --model DIR|URL           checkpoint folder or http(s) URL (Hugging Face layout:
                            config.json, vocab.json, merges.txt, model.safetensors;
                            default: the embedded model)
  --prompt TEXT             prompt text (generate, tokenize, logits, score;
                            default: the arguments, or stdin for tokenize and score)
  --ids "1 2 3"             token ids (generate, logits, score, detokenize)
  --special                 treat <|endoftext|> in text as the special token
  --max-tokens N            new tokens to generate (default ${GENERATE_DEFAULTS.maxTokens})
  --temperature T           0 = greedy (default 1.0)
  --top-k K                 keep the K most likely tokens (0 = off)
  --top-p P                 nucleus sampling threshold (1 = off)
  --repetition-penalty R    penalise tokens already present (1 = off)
  --seed N                  random seed (default 0)
  --stop TEXT               stop before this text (repeatable, up to ${MAX_STOP})
  --ignore-eot              keep generating after <|endoftext|>
  --context slide|stop      a full context: keep the recent half and go on (default),
                            or stop (reason context_full)
  --truncate left|error     a prompt longer than the context: drop its oldest tokens
                            with a warning (default), or fail
  --stats                   print timings to stderr (generate)
  --draft DIR|URL           generate: speculative decoding with this draft model (same
                            vocabulary); same text when greedy, same distribution when sampling
  --draft-precision P       the draft's weights in memory (default q8_0)
  --draft-tokens K          tokens the draft proposes per round, 1..${LIMITS.draftTokensMax} (default 4)
  --precision P             weights in memory: auto (as stored if it fits, else f16, else
                            q8_0; default), f32, f16, q8_0
  --memory-budget BYTES     fail (naming a precision that fits) if the model would need
                            more (suffixes K, M, G: powers of 1024)
  --type T                  quantize: q8_0 or f16
  --dir DIR                 download: the folder to fill (default: ./NAME)
  --base-url URL            download: the Hub or a mirror of it (default:
                            $GPT2_WASM_BASE_URL, else https://huggingface.co)
  --revision REV            download: branch, tag or commit (default main)
  -q, --quiet               no loading progress or "loaded ..." line on stderr
  -h, --help                print this help
  --version                 print the version
While a model loads, stderr shows a progress bar (on a terminal) or, otherwise, one
"loaded ..." line. Ctrl-C stops a generation; the exit status is then 130.
`;

/** A usage error: reported with a pointer to --help, exit status 2. */
class UsageError extends Error {}

// Option name -> [key, kind]; kind: 'flag' | 'string' | 'int' | 'float' | 'seed' | 'list'.
const OPTIONS = {
  '--model': ['model', 'string'],
  '--prompt': ['prompt', 'string'],
  '--ids': ['ids', 'string'],
  '--special': ['special', 'flag'],
  '--max-tokens': ['maxTokens', 'int'],
  '--temperature': ['temperature', 'float'],
  '--top-k': ['topK', 'int'],
  '--top-p': ['topP', 'float'],
  '--repetition-penalty': ['repetitionPenalty', 'float'],
  '--seed': ['seed', 'seed'],
  '--stop': ['stop', 'list'],
  '--ignore-eot': ['ignoreEot', 'flag'],
  '--context': ['contextPolicy', 'string'],
  '--truncate': ['truncatePrompt', 'string'],
  '--stats': ['stats', 'flag'],
  '--draft': ['draft', 'string'],
  '--draft-precision': ['draftPrecision', 'string'],
  '--draft-tokens': ['draftTokens', 'int'],
  '--precision': ['precision', 'string'],
  '--memory-budget': ['memoryBudget', 'bytes'],
  '--type': ['type', 'string'],
  '--dir': ['dir', 'string'],
  '--base-url': ['baseUrl', 'string'],
  '--revision': ['revision', 'string'],
  '--quiet': ['quiet', 'flag'],
  '-q': ['quiet', 'flag'],
  ...FINETUNE_OPTIONS,
};

/**
 * Parses the arguments (without node and the script).
 * @returns {{ command: string, positional: string[], o: Record<string, any> } | { help: true } | { version: true }}
 */
function parseArgs(argv) {
  if (argv.length === 0) throw new UsageError('no command or prompt given');
  let args = argv;
  let command = 'generate';
  if (args[0] === 'help') return { help: true };
  if (COMMANDS.includes(args[0])) {
    command = args[0];
    args = args.slice(1);
  }
  const o = { stop: [] };
  const positional = [];
  for (let i = 0; i < args.length; i++) {
    let a = args[i];
    if (a === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') return { help: true };
    if (a === '--version') return { version: true };
    if (!a.startsWith('-') || a === '-' || /^-\d/.test(a)) {
      positional.push(a);
      continue;
    }
    let value;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const spec = OPTIONS[a];
    if (!spec) {
      const near = closest(a, Object.keys(OPTIONS));
      throw new UsageError(`unknown option '${a}'${near ? ` (did you mean '${near}'?)` : ''}`);
    }
    const [key, kind] = spec;
    if (kind === 'flag') {
      if (value !== undefined) throw new UsageError(`option ${a} takes no value`);
      o[key] = true;
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= args.length) throw new UsageError(`option ${a} needs a value`);
      value = args[++i];
    }
    o[key] = convert(a, kind, value, o[key]);
  }
  if (o.stop.length > MAX_STOP) throw new UsageError(`at most ${MAX_STOP} --stop options`);
  if (o.contextPolicy !== undefined && !['slide', 'stop'].includes(o.contextPolicy)) {
    throw new UsageError(`--context must be slide or stop, got '${o.contextPolicy}'`);
  }
  if (o.truncatePrompt !== undefined && !['left', 'error'].includes(o.truncatePrompt)) {
    throw new UsageError(`--truncate must be left or error, got '${o.truncatePrompt}'`);
  }
  return { command, positional, o };
}

function convert(name, kind, v, previous) {
  switch (kind) {
    case 'string':
      return v;
    case 'list':
      return [...previous, v];
    case 'int':
    case 'seed': {
      const n = /^\+?\d+$/.test(v) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n) || (kind === 'int' && n > 2 ** 30)) {
        throw new UsageError(`${name} needs a whole number >= 0, got '${v}'`);
      }
      return n;
    }
    case 'bytes': {
      const m = /^(\d+)([KMG]?)$/i.exec(v);
      const n = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
      if (!Number.isSafeInteger(n)) throw new UsageError(`${name} needs a size in bytes (e.g. 4G), got '${v}'`);
      return n;
    }
    case 'float': {
      const n = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v.trim()) ? Number(v) : NaN;
      if (!Number.isFinite(n)) throw new UsageError(`${name} needs a number, got '${v}'`);
      return n;
    }
    default:
      throw new Error(`bad option kind ${kind}`);
  }
}

/** Whitespace- or comma-separated token ids. */
function parseIds(text) {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  const ids = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (ids.some((n) => !Number.isSafeInteger(n))) {
    throw new Gpt2Error('token ids must be whole numbers separated by spaces', 'arg');
  }
  return ids;
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Gpt2Error('the text on stdin is not valid UTF-8', 'arg');
  }
}

/** The text input of a command: --prompt, else the positional arguments, else stdin (or ''). */
async function textInput(o, positional, { stdin }) {
  if (o.prompt !== undefined && positional.length) {
    throw new UsageError('give the prompt either with --prompt or as arguments, not both');
  }
  if (o.prompt !== undefined) return o.prompt;
  if (positional.length) return positional.join(' ');
  return stdin ? readStdin() : '';
}

/** How to show a model location: a local folder relative to the working directory. */
function displaySource(source) {
  if (typeof source !== 'string') return String(source);
  if (/^https?:/.test(source)) return source;
  let path = source;
  if (source.startsWith('file:')) path = fileURLToPath(source);
  if (!isAbsolute(path)) return path;
  const rel = relative(process.cwd(), path);
  if (rel === '') return './';
  if (!rel.startsWith('..') && !isAbsolute(rel)) return rel.endsWith('/') ? rel : `${rel}/`;
  return path.endsWith('/') ? path : `${path}/`;
}

function escapeToken(s) {
  return s.replace(/[\\\n\t\r\x00-\x1f\x7f]/g, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** Formats like C's %.9g (shortest form, no trailing zeros). */
function g9(v) {
  if (v === 0) return '0';
  return String(Number(v.toPrecision(9)));
}

function out(s) {
  process.stdout.write(s);
}

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      if (argv.length === 0) {
        process.stderr.write(USAGE);
        return 2;
      }
      return usageError(e.message);
    }
    throw e;
  }
  if (parsed.help) {
    out(USAGE);
    return 0;
  }
  if (parsed.version) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    out(`${PROGRAM} ${pkg.version}\n`);
    return 0;
  }
  const { command, positional, o } = parsed;
  if (command === 'download') return cmdDownload(positional, o);
  if (command === 'quantize') return cmdQuantize(positional, o);
  if (command === 'finetune') {
    return finetuneCommand(positional, o, { loadModel: (opts) => loadModel(opts), usageError, out, optionName, g9 });
  }
  const trainOnly = Object.keys(o).find((k) => Object.values(FINETUNE_OPTIONS).some(([key]) => key === k));
  if (trainOnly) return usageError(`${optionName(trainOnly)} is an option of finetune, not of ${command}`);
  if (o.type !== undefined) return usageError(`--type is an option of quantize, not of ${command}`);
  for (const key of ['precision', 'draftPrecision']) {
    if (o[key] !== undefined && !PRECISIONS.includes(o[key])) {
      return usageError(`unknown ${optionName(key).slice(2)} '${o[key]}' (choose ${PRECISIONS.slice(0, -1).join(', ')} or ${PRECISIONS.at(-1)})`);
    }
  }
  if (command !== 'generate') {
    for (const key of ['draft', 'draftPrecision', 'draftTokens']) {
      if (o[key] !== undefined) return usageError(`${optionName(key)} is an option of generate, not of ${command}`);
    }
  } else if (o.draft === undefined && (o.draftPrecision !== undefined || o.draftTokens !== undefined)) {
    return usageError(`${optionName(o.draftPrecision !== undefined ? 'draftPrecision' : 'draftTokens')} needs --draft`);
  }
  for (const key of DOWNLOAD_KEYS) {
    if (o[key] !== undefined) return usageError(`${optionName(key)} is an option of download, not of ${command}`);
  }

  // Inputs that need no model are checked before loading it (fast usage errors).
  let ids;
  if (command === 'detokenize') {
    if (o.ids !== undefined && positional.length) return usageError('give the ids either with --ids or as arguments, not both');
    ids = parseIds(o.ids ?? (positional.length ? positional.join(' ') : await readStdin()));
  } else if (o.ids !== undefined) {
    if (!['generate', 'logits', 'score'].includes(command)) return usageError(`${command} does not take --ids`);
    if (o.prompt !== undefined || positional.length) return usageError('give either --ids or a prompt, not both');
    ids = parseIds(o.ids);
  }
  if (command === 'logits' && ids === undefined && o.prompt === undefined && !positional.length) {
    return usageError('logits needs --ids or --prompt');
  }
  if (command === 'info' && positional.length) return usageError(`unexpected argument '${positional[0]}'`);
  let text;
  if (ids === undefined) text = await textInput(o, positional, { stdin: command === 'tokenize' || command === 'score' });

  // Ctrl-C: the first one aborts (the load, or the generation at the next token); the second
  // one exits at once.
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const model = await loadModel(o, controller.signal);
    try {
      if (o.draft !== undefined) {
        // The draft shares the model's instance (load's `into`) and is disposed with it.
        o.draftModel = await loadModel({ model: o.draft, precision: o.draftPrecision ?? 'q8_0', quiet: o.quiet, into: model },
          controller.signal);
      }
      switch (command) {
        case 'generate': return await cmdGenerate(model, o, text, ids, controller.signal);
        case 'tokenize': return cmdTokenize(model, o, text);
        case 'detokenize': return cmdDetokenize(model, ids);
        case 'logits': return cmdLogits(model, o, text, ids);
        case 'score': return cmdScore(model, o, text, ids);
        case 'info': return cmdInfo(model);
      }
    } finally {
      model.dispose();
    }
  } catch (e) {
    if (controller.signal.aborted && isAbort(e)) return 130;
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
  return 0;
}

function isAbort(e) {
  return e && (e.name === 'AbortError' || e.code === 'aborted');
}

async function loadModel(o, signal) {
  const bar = new ProgressBar(process.stderr, { label: o.model === undefined ? 'embedded model' : displaySource(o.model) });
  try {
    const model = await load(o.model, {
      signal, precision: o.precision, memoryBudget: o.memoryBudget, threads: o.threads, onProgress: o.quiet ? undefined : (p) => bar.update(p),
      ...(o.into ? { into: o.into } : {}),
    });
    bar.label = displaySource(model.info.source);
    bar.done({ quiet: !!o.quiet });
    // 'auto' took a smaller precision than the file's (its reason says why): say so
    if (!o.quiet && model.info.precisionReason.includes(', because ')) process.stderr.write(`precision ${model.info.precisionReason}\n`);
    return model;
  } catch (e) {
    bar.cancel();
    throw e;
  }
}

async function cmdGenerate(model, o, text, ids, signal) {
  const options = {
    maxTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, topP: o.topP,
    repetitionPenalty: o.repetitionPenalty, seed: o.seed, stop: o.stop, ignoreEot: !!o.ignoreEot,
    special: !!o.special, signal,
    contextPolicy: o.contextPolicy, truncatePrompt: o.truncatePrompt,
    ...(o.draftModel ? { draft: o.draftModel, draftTokens: o.draftTokens } : {}),
  };
  const generation = model.generate(ids ?? text, options); // bad options throw here, before output
  const started = performance.now();
  let tokens = 0;
  let firstAt;
  let cancelled = false;
  let echoed = false;
  const echo = () => {
    if (!echoed) out(ids ? model.detokenize(ids) : text);
    echoed = true;
  };
  try {
    // The first step runs the prompt: errors about it (too long for the context) come before
    // any output, as with the native tool.
    for (let r = await generation.next(); !r.done; r = await generation.next()) {
      echo();
      if (r.value.token !== null) {
        tokens++;
        firstAt ??= performance.now();
      }
      out(r.value.text);
    }
  } catch (e) {
    if (!(signal.aborted && isAbort(e))) {
      if (echoed) out('\n');
      throw e;
    }
    cancelled = true;
  }
  echo();
  out('\n');
  if (!cancelled) {
    for (const w of (await generation.summary).warnings) process.stderr.write(`warning: ${w}\n`);
  }
  if (o.stats) {
    let s;
    if (cancelled) {
      // An aborted generation's summary rejects; report what was counted here.
      const t = performance.now();
      const first = firstAt ?? t;
      s = {
        promptTokens: ids ? ids.length : model.tokenize(text, { special: !!o.special }).length,
        tokens, stopReason: 'cancelled',
        timings: { firstTokenMs: first - started, tokensPerSecond: tokens > 1 && t > first ? (tokens - 1) / ((t - first) / 1000) : null },
      };
    } else {
      s = await generation.summary;
    }
    const tps = s.timings.tokensPerSecond === null ? 'n/a' : s.timings.tokensPerSecond.toFixed(1);
    process.stderr.write(`prompt ${s.promptTokens} tokens, generated ${s.tokens} tokens, stop: ${s.stopReason}, ` +
      `first token ${(s.timings.firstTokenMs / 1000).toFixed(3)} s, ${tps} tokens/s after it\n`);
    if (s.speculative) {
      const { proposed, accepted, rate } = s.speculative;
      process.stderr.write(`draft: ${accepted} of ${proposed} proposed tokens accepted (${rate === null ? 'n/a' : `${(100 * rate).toFixed(1)}%`})\n`);
    }
  }
  return cancelled ? 130 : 0;
}

function cmdTokenize(model, o, text) {
  out(`${model.tokenize(text, { special: !!o.special }).join(' ')}\n`);
  return 0;
}

function cmdDetokenize(model, ids) {
  out(model.detokenize(ids));
  return 0;
}

function cmdLogits(model, o, text, ids) {
  ids ??= model.tokenize(text, { special: !!o.special });
  if (ids.length === 0) throw new Gpt2Error('no tokens to run', 'arg');
  const logits = model.logits(ids);
  const lines = new Array(logits.length);
  for (let i = 0; i < logits.length; i++) lines[i] = g9(logits[i]);
  out(`${lines.join('\n')}\n`);
  return 0;
}

function cmdScore(model, o, text, ids) {
  const r = model.score(ids ?? text, { special: !!o.special });
  const lines = ['index\tid\tlogprob\trank\ttoken'];
  r.tokens.forEach((t, i) => {
    const lp = t.logprob === null ? '' : t.logprob.toFixed(6);
    const rank = t.rank === null ? '' : String(t.rank);
    lines.push(`${i}\t${t.id}\t${lp}\t${rank}\t${escapeToken(t.text)}`);
  });
  if (r.perplexity !== null) {
    lines.push(`tokens ${r.tokens.length}, total logprob ${r.totalLogprob.toFixed(6)}, perplexity ${r.perplexity.toFixed(4)}`);
  }
  out(`${lines.join('\n')}\n`);
  return 0;
}

function cmdInfo(model) {
  const c = model.config;
  const mib = (n) => (n / 1048576).toFixed(1);
  const pad = (k) => k.padEnd(13);
  out([
    `${pad('model')}${displaySource(model.info.source)}`,
    `${pad('n_layer')}${c.nLayer}`,
    `${pad('n_head')}${c.nHead}`,
    `${pad('n_embd')}${c.nEmbd}`,
    `${pad('n_ctx')}${c.nCtx}`,
    `${pad('n_vocab')}${c.nVocab}`,
    `${pad('n_inner')}${c.nInner}`,
    `${pad('lm_head')}${c.untiedHead ? 'separate' : 'tied to wte'}`,
    `${pad('precision')}${model.info.precision} (${Object.entries(model.info.matrixPrecision)
      .filter(([k]) => k !== 'lmHead' || c.untiedHead).map(([k, v]) => `${MATRIX_NAMES[k]} ${v}`).join(', ')})`,
    `${pad('')}${model.info.precisionReason}`,
    `${pad('weights')}${mib(model.info.weightsBytes)} MiB (${model.info.weightsBytes} bytes)`,
    `${pad('tokenizer')}<|endoftext|> = ${model.eotId}`,
    `${pad('load time')}${model.info.loadSeconds.toFixed(2)} s`,
  ].join('\n') + '\n');
  return 0;
}

const MATRIX_NAMES = { wte: 'wte', lmHead: 'lm_head', qkv: 'qkv', attnProj: 'attn_proj', fc: 'fc', mlpProj: 'mlp_proj' };

/** `quantize IN_DIR OUT_DIR --type q8_0|f16`: a converted copy of a checkpoint folder. */
async function cmdQuantize(positional, o) {
  const other = Object.keys(o).find((k) => !['quiet', 'type'].includes(k) && !(k === 'stop' && o.stop.length === 0));
  if (other) return usageError(`quantize does not take ${optionName(other)}`);
  if (positional.length !== 2) return usageError('quantize needs IN_DIR and OUT_DIR');
  if (o.type === undefined) return usageError('quantize needs --type q8_0 or --type f16');
  if (!['q8_0', 'f16'].includes(o.type)) return usageError(`--type must be q8_0 or f16, got '${o.type}'`);
  const [inDir, outDir] = positional;
  const { bytes, summary } = await quantizeFolder(inDir, outDir, { type: o.type });
  if (!o.quiet) process.stderr.write(`wrote ${outDir.replace(/\/?$/, '/')}model.safetensors (${bytes} bytes): ${summary}\n`);
  return 0;
}

const DOWNLOAD_KEYS = ['dir', 'baseUrl', 'revision'];

/** The option's name on the command line (the first one, for a key). */
function optionName(key) {
  return Object.keys(OPTIONS).find((name) => OPTIONS[name][0] === key);
}

/**
 * `download NAME`: fetches the four files of a checkpoint into a folder, with a progress bar
 * on a terminal, and prints the folder's path on stdout (for --model). Ctrl-C keeps the
 * partial file for the next run (exit status 130).
 */
async function cmdDownload(positional, o) {
  const other = Object.keys(o).find((k) => !['quiet', ...DOWNLOAD_KEYS].includes(k) && !(k === 'stop' && o.stop.length === 0));
  if (other) return usageError(`download does not take ${optionName(other)}`);
  if (positional.length !== 1) {
    return usageError(`download needs one model name (${Object.keys(MODEL_REPOS).join(', ')}, or OWNER/NAME)`);
  }
  const [name] = positional;
  try {
    resolveRepo(name);
  } catch (e) {
    return usageError(e.message);
  }
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const bar = new ProgressBar(process.stderr, { label: name, verbs: ['fetching', 'fetched'] });
  try {
    const dir = await download(name, {
      dir: o.dir, baseUrl: o.baseUrl, revision: o.revision, signal: controller.signal,
      // Bytes kept from an interrupted run count as done but not in the speed.
      onProgress: (e) => { if (e.phase === 'download' && !o.quiet) bar.update({ ...e, skipped: e.loaded - e.transferred }); },
    });
    bar.label = `${name} into ${displaySource(dir)}`;
    bar.done({ quiet: !!o.quiet });
    out(`${dir}\n`);
    return 0;
  } catch (e) {
    bar.cancel();
    if (controller.signal.aborted && isAbort(e)) {
      process.stderr.write(`${PROGRAM}: download interrupted; the partial file is kept, run the same command again to resume\n`);
      return 130;
    }
    if (e instanceof Gpt2Error && e.code === 'arg') return usageError(e.message);
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function usageError(message) {
  process.stderr.write(`${PROGRAM}: ${message} (see ${PROGRAM} --help)\n`);
  return 2;
}

/** One line for any error: the message, without a repeated program name or later lines. */
function errorLine(e) {
  let message = e instanceof Error ? e.message : String(e);
  message = message.replace(new RegExp(`^${PROGRAM}: `), '').split('\n')[0].trim();
  return `${PROGRAM}: ${message || 'unknown error'}\n`;
}

// A closed stdout (e.g. `gpt2-wasm ... | head -c 10`) ends the program quietly.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  process.stderr.write(errorLine(e));
  process.exit(1);
});

main(process.argv.slice(2)).then(
  (status) => { process.exitCode = status; },
  (e) => {
    if (e instanceof UsageError) {
      process.exitCode = usageError(e.message);
      return;
    }
    process.stderr.write(errorLine(e));
    process.exitCode = 1;
  },
);
