// download.js - download(name, options): fetches a GPT-2 checkpoint (config.json, vocab.json,
// merges.txt, model.safetensors) from the Hugging Face Hub, or a mirror of it, into a local
// folder that load() accepts. Node only (it writes files); the node: modules are imported
// when it runs, so js/index.js stays loadable in browsers.
//
//   const dir = await download('distilgpt2', { dir: 'models/distilgpt2', onProgress });
//   const model = await load(dir);
//
// Every file is written to FILE.part and renamed when complete and verified, so the folder
// never holds a half-written file. An interrupted download (network failure, abort, Ctrl-C)
// keeps its .part and the next call continues it with an HTTP Range request. Verification:
// the size (X-Linked-Size, Content-Length, Content-Range) and, when the server gives it, the
// SHA-256 (Hugging Face's X-Linked-Etag on the redirect of a large file's resolve URL).
import { abortError, Gpt2Error, httpStatus, throwIfAborted } from '../errors.js';
import { checkOptions, OPTION_NAMES } from '../options.js';
import { FILE_NAMES, MODEL_REPOS } from '../sources.js';

export const DEFAULT_BASE_URL = 'https://huggingface.co';

const DEFAULT_TIMEOUT_MS = 30000;
const DEFAULT_RETRIES = 3;
const DEFAULT_RETRY_DELAY_MS = 500;
const MAX_REDIRECTS = 5;
const SHA256_HEX = /^[0-9a-f]{64}$/;
// Hugging Face repository ids: "owner/name", letters, digits, '-', '_', '.'.
const REPO_ID = /^[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9_])?\/[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9_])?$/;

/**
 * The repository id of a model name: one of {@link MODEL_REPOS}' keys, or an `owner/name` id.
 * @param {string} name
 * @returns {string}
 * @throws {Gpt2Error} 'arg' for anything else
 */
export function resolveRepo(name) {
  if (typeof name !== 'string') throw new Gpt2Error('the model name must be a string', 'arg');
  if (Object.hasOwn(MODEL_REPOS, name)) return MODEL_REPOS[name];
  if (REPO_ID.test(name) && !name.includes('..') && !name.includes('--')) return name;
  throw new Gpt2Error(`unknown model '${name}': use ${Object.keys(MODEL_REPOS).join(', ')}, ` +
    'or a Hugging Face repository id owner/name', 'arg');
}

/**
 * The URL of one file of a repository: BASE/REPO/resolve/REVISION/FILE.
 * @param {string} baseUrl @param {string} repo @param {string} revision @param {string} file
 */
export function resolveUrl(baseUrl, repo, revision, file) {
  return `${baseUrl.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/** A failure worth another attempt (the connection dropped mid-file, a 5xx answer). */
class TransientError extends Gpt2Error {
  constructor(message) {
    super(message, 'io');
  }
}

/**
 * Downloads a checkpoint's four files into a folder (created if needed).
 * @param {string} name 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', 'distilgpt2', or a
 *   Hugging Face repository id 'owner/name'
 * @param {import('../index.js').DownloadOptions} [options]
 * @returns {Promise<string>} the folder's absolute path
 */
export async function download(name, options) {
  options = checkOptions(options, OPTION_NAMES.download);
  const { signal } = options;
  throwIfAborted(signal);
  const repo = resolveRepo(name);
  if (typeof process !== 'object' || typeof process.versions?.node !== 'string') {
    throw new Gpt2Error('download() needs Node (it writes files); in a browser, load() the model\'s URL instead', 'arg');
  }
  const fs = await import('node:fs/promises');
  const { createReadStream } = await import('node:fs');
  const { createHash } = await import('node:crypto');
  const path = await import('node:path');

  const envBase = process.env.GPT2_WASM_BASE_URL;
  const baseUrl = String(options.baseUrl || envBase || DEFAULT_BASE_URL);
  if (!/^https?:\/\/[^/]/i.test(baseUrl)) {
    throw new Gpt2Error(`the base URL must be an http(s) URL, got '${baseUrl}'`, 'arg');
  }
  const revision = options.revision ?? 'main';
  if (typeof revision !== 'string' || revision === '') throw new Gpt2Error('revision must be a non-empty string', 'arg');
  const dir = path.resolve(options.dir ?? repo.split('/')[1]);
  const fetchFn = options.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== 'function') throw new Gpt2Error('fetch() is not available here', 'arg');
  const ctx = {
    repo, signal, fetchFn, fs, createReadStream, createHash,
    timeout: positive(options.timeout, DEFAULT_TIMEOUT_MS, 'timeout'),
    retries: wholeNumber(options.retries, DEFAULT_RETRIES, 'retries'),
    retryDelay: wholeNumber(options.retryDelay, DEFAULT_RETRY_DELAY_MS, 'retryDelay'),
    transferred: 0, // body bytes received in this call (the rest was on disk already)
  };

  // First the facts about all four files (size, SHA-256), before anything is written: an
  // unknown model or an unreachable server fails here, leaving the disk untouched.
  const urls = Object.fromEntries(FILE_NAMES.map((f) => [f, resolveUrl(baseUrl, repo, revision, f)]));
  // All four at once; the first failure in file order is reported (config.json's 404 means
  // the model does not exist, whichever answer came first).
  const settled = await Promise.allSettled(FILE_NAMES.map((f) => headInfo(ctx, f, urls[f])));
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const metas = settled.map((r) => r.value);
  const meta = Object.fromEntries(FILE_NAMES.map((f, i) => [f, metas[i]]));
  const sizes = metas.map((m) => m.size);
  const total = sizes.every((s) => s !== undefined) ? sizes.reduce((a, b) => a + b, 0) : undefined;

  await fs.mkdir(dir, { recursive: true });
  let before = 0; // bytes of the files already finished
  for (const file of FILE_NAMES) {
    const done = await fetchFile(ctx, file, urls[file], meta[file], path.join(dir, file), (fileLoaded, fileTotal) => {
      options.onProgress?.({
        phase: 'download', file, loaded: before + fileLoaded, total, fileLoaded, fileTotal, transferred: ctx.transferred,
      });
    });
    before += done;
  }
  await syncDir(fs, dir);
  options.onProgress?.({ phase: 'done', file: null, loaded: before, total: before, transferred: ctx.transferred });
  return dir;
}

function positive(v, fallback, name) {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0)) throw new Gpt2Error(`${name} must be a number > 0`, 'arg');
  return v;
}

function wholeNumber(v, fallback, name) {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 0) throw new Gpt2Error(`${name} must be a whole number >= 0`, 'arg');
  return v;
}

/**
 * One request with a time limit: `timeout` ms for the answer, and again for every chunk of
 * the body (touch() restarts the clock). Aborting the caller's signal aborts it too.
 */
function deadline(ctx) {
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  let timer;
  const state = {
    signal: controller.signal,
    timedOut: false,
    touch() {
      clearTimeout(timer);
      timer = setTimeout(() => {
        state.timedOut = true;
        controller.abort();
      }, ctx.timeout);
    },
    end() {
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
    },
    /** Stops the request (its body is not wanted). */
    cancel() {
      state.end();
      controller.abort();
    },
  };
  state.touch();
  return state;
}

/** Why a fetch() failed, in a few words: the system error code when there is one. */
function reason(e) {
  const c = e?.cause;
  if (c?.code && c?.message && !c.message.includes(c.code)) return `${c.code}: ${c.message}`;
  return c?.message || c?.code || e?.message || String(e);
}

function cannotReach(url, why) {
  return new Gpt2Error(`cannot reach ${url} (${why}); check the network, or use a mirror ` +
    '(--base-url URL, the baseUrl option, or GPT2_WASM_BASE_URL)', 'io');
}

/** fetch() with the time limit, turning failures into clear errors. */
async function send(ctx, url, init, dl) {
  try {
    return await ctx.fetchFn(url, { ...init, signal: dl.signal });
  } catch (e) {
    dl.end();
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    if (dl.timedOut) throw cannotReach(url, `no answer within ${seconds(ctx.timeout)}`);
    throw cannotReach(url, reason(e));
  }
}

function seconds(ms) {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

/**
 * An HTTP error answer as an error: unknown model, missing file, server trouble. The Hub
 * names the case in X-Error-Code; a plain server (a mirror) is judged by status and file: a
 * repository without config.json does not exist.
 */
function httpError(ctx, file, url, res) {
  const status = httpStatus(res);
  const code = res.headers.get('x-error-code');
  const fail = (what) => new Gpt2Error(`model '${ctx.repo}' ${what}: ${url} answered ${status}`, 'io');
  if (code === 'GatedRepo') return fail('is gated (accept its conditions on the Hub first)');
  if (code === 'RevisionNotFound') return fail('has no such revision');
  if (code === 'RepoNotFound' || res.status === 401 || res.status === 403 || (res.status === 404 && !code && file === 'config.json')) {
    return fail(res.status === 404 ? 'not found' : 'not found (or it is private)');
  }
  if (res.status === 404) {
    return fail(`has no ${file}${file === 'model.safetensors' ? ' (only safetensors checkpoints are supported)' : ''}`);
  }
  if (res.status >= 500 || res.status === 429) return new TransientError(`${url} answered ${status}`);
  return new Gpt2Error(`cannot download ${url}: ${status}`, 'io');
}

function quotedTag(v) {
  return v ? v.replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase() : undefined;
}

function sizeHeader(v) {
  if (v === null || v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The body size a 2xx answer announces (not when the body is content-encoded). */
function bodySize(res) {
  const enc = res.headers.get('content-encoding');
  return enc && enc !== 'identity' ? undefined : sizeHeader(res.headers.get('content-length'));
}

/**
 * What the server says about a file, without its body: HEAD on the resolve URL, following
 * redirects by hand so that Hugging Face's own headers on the redirect of a large (LFS) file
 * are seen: X-Linked-Size (its size) and X-Linked-Etag (its SHA-256). Same-site redirects of
 * renamed repositories are followed. A server without HEAD gives no facts (checked later).
 * @returns {Promise<{ size?: number, sha256?: string }>}
 */
async function headInfo(ctx, file, url) {
  let at = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const dl = deadline(ctx);
    const res = await send(ctx, at, { method: 'HEAD', redirect: 'manual', headers: { 'Accept-Encoding': 'identity' } }, dl);
    dl.end();
    const linkedSize = sizeHeader(res.headers.get('x-linked-size'));
    const linkedTag = quotedTag(res.headers.get('x-linked-etag'));
    if (res.status >= 300 && res.status < 400) {
      if (linkedSize !== undefined || linkedTag !== undefined) {
        // The redirect of an LFS file: its ETag is the SHA-256 too, when X-Linked-Etag is absent.
        const tag = linkedTag ?? quotedTag(res.headers.get('etag'));
        return { size: linkedSize, sha256: tag && SHA256_HEX.test(tag) ? tag : undefined };
      }
      const location = res.headers.get('location');
      if (!location) return {};
      at = new URL(location, at).href;
      continue;
    }
    if (res.ok) {
      return {
        size: linkedSize ?? bodySize(res),
        sha256: linkedTag && SHA256_HEX.test(linkedTag) ? linkedTag : undefined,
      };
    }
    if (res.status === 405 || res.status === 501) return {}; // no HEAD here: learn the size from the GET
    const err = httpError(ctx, file, url, res);
    if (err instanceof TransientError) return {}; // the GET will retry
    throw err;
  }
  throw new Gpt2Error(`too many redirects from ${url}`, 'io');
}

/** Size of a file, or -1 when it does not exist. */
async function fileSize(fs, p) {
  try {
    return (await fs.stat(p)).size;
  } catch (e) {
    if (e.code === 'ENOENT') return -1;
    throw new Gpt2Error(`${p}: ${e.code || e.message}`, 'io');
  }
}

/** The SHA-256 of a file's first `length` bytes, into hash. */
async function hashFile(ctx, p, hash, length) {
  if (length <= 0) return;
  const s = ctx.createReadStream(p, { start: 0, end: length - 1, highWaterMark: 1 << 20, signal: ctx.signal });
  try {
    for await (const chunk of s) hash.update(chunk);
  } catch (e) {
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    throw new Gpt2Error(`${p}: read failed (${e.code || e.message})`, 'io');
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Brings one file to `target`: keeps a complete one, else continues or starts `target.part`,
 * verifies it and renames it. Returns the file's size.
 * @param {(fileLoaded: number, fileTotal: number|undefined) => void} progress
 */
async function fetchFile(ctx, file, url, meta, target, progress) {
  const { fs, createHash } = ctx;
  const part = `${target}.part`;
  let expected = meta.size;

  // A finished file from an earlier run is kept when it still matches the server's.
  const existing = await fileSize(fs, target);
  if (existing >= 0 && expected !== undefined && existing === expected) {
    let same = true;
    if (meta.sha256) {
      const h = createHash('sha256');
      await hashFile(ctx, target, h, existing);
      same = h.digest('hex') === meta.sha256;
    }
    if (same) {
      await fs.rm(part, { force: true });
      progress(existing, existing);
      return existing;
    }
  }

  let have = await fileSize(fs, part);
  if (have < 0 || (expected !== undefined && have > expected)) have = 0;
  let hash = meta.sha256 ? createHash('sha256') : null;
  if (hash) await hashFile(ctx, part, hash, have);
  let triedFresh = false; // a 416 already made us start over

  for (let attempt = 0; ; attempt++) {
    throwIfAborted(ctx.signal);
    if (attempt > 0) await sleep(Math.min(ctx.retryDelay * 2 ** (attempt - 1), 8000), ctx.signal);
    const restart = () => {
      have = 0;
      if (hash) hash = createHash('sha256');
    };
    try {
      const dl = deadline(ctx);
      const headers = { 'Accept-Encoding': 'identity' };
      if (have > 0) headers.Range = `bytes=${have}-`;
      let res;
      try {
        res = await send(ctx, url, { headers }, dl);
      } catch (e) {
        // The server answered moments ago in this call: most likely a passing failure.
        if (ctx.transferred > 0 && e instanceof Gpt2Error) throw new TransientError(e.message);
        throw e;
      }
      let start = 0;
      let announced; // the total size this answer gives
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((res.headers.get('content-range') || '').trim());
        if (!m || Number(m[1]) !== have) {
          // An answer for other bytes than asked: start over without Range.
          dl.cancel();
          restart();
          throw new TransientError(`${url} answered a range that does not continue the partial file`);
        }
        start = have;
        if (m[3] !== '*') announced = Number(m[3]);
      } else if (res.status === 200) {
        if (have > 0) restart(); // the server ignored Range: the body is the whole file
        announced = bodySize(res);
      } else if (res.status === 416) {
        dl.cancel();
        // Nothing left to send from `have` on: the .part is complete, or longer than the file.
        const total = sizeHeader((res.headers.get('content-range') || '').replace(/^bytes \*\//, ''));
        if (total !== undefined && total === have && (expected === undefined || expected === have)) {
          expected = have;
          progress(have, expected);
          break;
        }
        if (triedFresh) throw new Gpt2Error(`${url} answered HTTP 416 to a request from the start`, 'io');
        triedFresh = true;
        restart();
        attempt--; // not a failure: a new start
        continue;
      } else {
        dl.cancel();
        throw httpError(ctx, file, url, res);
      }
      if (announced !== undefined) {
        if (expected !== undefined && announced !== expected) {
          dl.cancel();
          throw new Gpt2Error(`${url}: the server announces ${announced} bytes, but ${expected} were expected (X-Linked-Size)`, 'io');
        }
        expected = announced;
      }
      have = start;
      progress(have, expected);
      const got = await receive(ctx, res, dl, part, start, (n, chunk) => {
        have += n;
        ctx.transferred += n;
        hash?.update(chunk);
        progress(have, expected);
      }, url);
      have = got;
      if (expected !== undefined && have < expected) {
        throw new TransientError(`download of ${url} ended early, at ${have} of ${expected} bytes`);
      }
      if (expected !== undefined && have > expected) {
        await fs.rm(part, { force: true });
        throw new Gpt2Error(`${url} sent ${have} bytes, more than the ${expected} expected; the partial file was deleted`, 'io');
      }
      expected ??= have;
      break;
    } catch (e) {
      if (ctx.signal?.aborted) throw abortError(ctx.signal);
      if (!(e instanceof TransientError) || attempt >= ctx.retries) throw plain(e);
    }
  }

  // Verify, then move into place.
  const size = await fileSize(fs, part);
  if (size !== expected) {
    await fs.rm(part, { force: true });
    throw new Gpt2Error(`${file}: the downloaded file has ${size} bytes, expected ${expected}; the partial file was deleted, download again`, 'io');
  }
  if (hash) {
    const digest = hash.digest('hex');
    if (digest !== meta.sha256) {
      await fs.rm(part, { force: true });
      throw new Gpt2Error(`${file} from ${url} is corrupt: its SHA-256 is ${digest}, but the server's is ${meta.sha256}; ` +
        'the partial file was deleted, download again', 'io');
    }
  }
  await fs.rename(part, target);
  return size;
}

/** A TransientError that ran out of retries, as a plain Gpt2Error. */
function plain(e) {
  return e instanceof TransientError ? new Gpt2Error(e.message, 'io') : e;
}

/**
 * Writes an answer's body to `part` from byte `start` (truncating anything after it), calling
 * onChunk for every chunk written; fsyncs the file. Returns the file's length.
 */
async function receive(ctx, res, dl, part, start, onChunk, url) {
  const disk = (e) => new Gpt2Error(`${part}: cannot write (${e.code || e.message})`, 'io');
  let fh;
  try {
    fh = await ctx.fs.open(part, start > 0 ? 'r+' : 'w');
  } catch (e) {
    dl.cancel();
    throw disk(e);
  }
  let at = start;
  try {
    if (start > 0) await fh.truncate(start).catch((e) => { throw disk(e); });
    if (!res.body) {
      const bytes = new Uint8Array(await res.arrayBuffer());
      await fh.write(bytes, 0, bytes.byteLength, at).catch((e) => { throw disk(e); });
      at += bytes.byteLength;
      onChunk(bytes.byteLength, bytes);
    } else {
      const reader = res.body.getReader();
      try {
        for (;;) {
          let step;
          try {
            step = await readOrAbort(reader, dl.signal);
          } catch (e) {
            if (ctx.signal?.aborted) throw abortError(ctx.signal);
            const why = dl.timedOut ? `no data for ${seconds(ctx.timeout)}` : reason(e);
            throw new TransientError(`download of ${url} failed after ${at} bytes (${why})`);
          }
          if (step.done) break;
          dl.touch();
          const chunk = step.value;
          // Written before it is counted: what the .part holds is always a prefix of the file.
          await fh.write(chunk, 0, chunk.byteLength, at).catch((e) => { throw disk(e); });
          at += chunk.byteLength;
          onChunk(chunk.byteLength, chunk);
        }
      } finally {
        reader.cancel().catch(() => {});
      }
    }
    await fh.sync().catch((e) => { throw disk(e); });
    return at;
  } finally {
    dl.end();
    await fh.close();
  }
}

/** reader.read(), rejecting as soon as signal aborts (a pending read may not settle by itself). */
function readOrAbort(reader, signal) {
  if (signal.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    reader.read().then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Makes the renames durable (a no-op where directories cannot be opened, e.g. Windows). */
async function syncDir(fs, dir) {
  let fh;
  try {
    fh = await fs.open(dir, 'r');
    await fh.sync();
  } catch {
    // not supported here
  } finally {
    await fh?.close().catch(() => {});
  }
}
