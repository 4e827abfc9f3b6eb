// sources.js - where a checkpoint's four files come from: a URL folder (fetch), a local
// folder (Node), or the caller's own objects (Response, Blob, ReadableStream, ArrayBuffer,
// typed array). Each file becomes { name, size, stream() } read once, in chunks.
import { abortError, Gpt2Error, httpStatus, throwIfAborted } from './errors.js';
import { importNode, isNode } from './platform.js';

export const FILE_NAMES = ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors'];
/** The canonical Hugging Face repositories of the published GPT-2 checkpoints (the downloader's and the page's model names). */
export const MODEL_REPOS = Object.freeze({
  gpt2: 'openai-community/gpt2',
  'gpt2-medium': 'openai-community/gpt2-medium',
  'gpt2-large': 'openai-community/gpt2-large',
  'gpt2-xl': 'openai-community/gpt2-xl',
  distilgpt2: 'distilbert/distilgpt2',
});

const READ_BYTES = 4 << 20; // a local file is read this many bytes at a time (4 MiB: fewer, larger copies into the loader)

/**
 * @typedef {object} FileSource
 * @property {string} name         the file's name (e.g. 'model.safetensors')
 * @property {number|undefined} size  its size in bytes when known in advance
 * @property {string} [sizeFrom]  where size came from when it was announced rather than
 *   measured (named in errors: a server may announce a wrong size)
 * @property {() => AsyncIterable<Uint8Array>} stream  its bytes, in order, once; a chunk is
 *   valid until the next one is asked for (a local file's reads reuse one buffer)
 * @property {() => void} [cancel]  stops a download that will not be read (after a failure)
 */

/**
 * The embedded model folder shipped with the package (models/). (A bundler copies the files
 * by themselves, see defaultModelFiles: in a bundle this folder may not be served.)
 */
export function defaultModelUrl() {
  return new URL('.', modelsFile('config.json'));
}

/** A file of models/ (not a literal: for defaultModelUrl, which bundlers must not see as an asset). */
function modelsFile(name) {
  const models = '../models/';
  return new URL(models + name, import.meta.url);
}

/**
 * The URLs of the embedded model's four files. Each is named literally, so that a bundler
 * (Vite, webpack, ...) copies the file into its output and rewrites the URL (the copies may
 * get new names and need not share a folder). With `assetsUrl` (a copy of the package's
 * files served elsewhere, e.g. a CDN): the files under its models/ instead.
 * @param {string|URL} [assetsUrl]
 * @returns {Record<string, URL>}
 */
export function defaultModelFiles(assetsUrl) {
  if (assetsUrl !== undefined) {
    const models = new URL('models/', assetsFolder(assetsUrl));
    return Object.fromEntries(FILE_NAMES.map((name) => [name, new URL(name, models)]));
  }
  return {
    'config.json': new URL('../models/config.json', import.meta.url),
    'vocab.json': new URL('../models/vocab.json', import.meta.url),
    'merges.txt': new URL('../models/merges.txt', import.meta.url),
    'model.safetensors': new URL('../models/model.safetensors', import.meta.url),
  };
}

/**
 * The `assetsUrl` option as an absolute folder URL (relative URLs resolve against the page).
 * @param {string|URL} assetsUrl
 * @returns {URL}
 */
export function assetsFolder(assetsUrl) {
  let url;
  try {
    url = new URL(String(assetsUrl), globalThis.location ? globalThis.location.href : undefined);
  } catch {
    throw new Gpt2Error(`assetsUrl must be a URL (of the folder holding gpt2-wasm's js/, dist/ and models/), got ${JSON.stringify(String(assetsUrl))}`, 'arg');
  }
  return url.href.endsWith('/') ? url : new URL(url.href + '/');
}

/**
 * Opens the four files of a checkpoint.
 * @param {string|URL|Record<string, any>|undefined} source
 * @param {{ signal?: AbortSignal, fetch?: typeof fetch, assetsUrl?: string|URL }} options
 *   assetsUrl: where the embedded model is (see defaultModelFiles)
 * @returns {Promise<{ label: string, files: Record<string, FileSource> }>}
 */
export async function openSource(source, { signal, fetch: fetchFn, assetsUrl } = {}) {
  throwIfAborted(signal);
  if (source === undefined || source === null) {
    const urls = defaultModelFiles(assetsUrl);
    const label = urlFolder(urls['config.json']);
    try {
      return await openUrls(label, urls, signal, fetchFn);
    } catch (e) {
      // e.g. a bundle that did not copy the files (esbuild): say how to point at them.
      if (!(e instanceof Gpt2Error) || e.code !== 'io' || isNode) throw e;
      throw new Gpt2Error(`${e.message} (the embedded model: set the assetsUrl option to the folder holding gpt2-wasm's models/)`, e.code);
    }
  }
  if (typeof source === 'string' || source instanceof URL) {
    const url = folder(toUrl(source));
    const urls = Object.fromEntries(FILE_NAMES.map((name) => [name, new URL(name, url)]));
    return openUrls(url.href, urls, signal, fetchFn);
  }
  if (typeof source === 'object') return openObjects(source, signal);
  throw new Gpt2Error('model source must be a URL, a folder path, or an object of files', 'arg');
}

/** A string is a URL if it has a scheme; otherwise a path (Node) or relative URL (browser). */
function toUrl(s) {
  if (s instanceof URL) return s;
  if (/^[a-zA-Z][a-zA-Z0-9+.-]+:/.test(s)) return new URL(s);
  if (isNode) {
    // Resolve against the working directory, as a folder.
    const cwd = process.cwd().replace(/\/?$/, '/');
    const abs = s.startsWith('/') ? s : cwd + s;
    return new URL('file://' + encodeURI(abs.replace(/\/?$/, '/')));
  }
  return new URL(s, globalThis.location ? globalThis.location.href : undefined);
}

function folder(url) {
  return url.href.endsWith('/') ? url : new URL(url.href + '/');
}

/** The label of a set of files: their folder ('.../models/'), or 'embedded' (a bundler inlined them as data: URLs). */
function urlFolder(url) {
  return url.protocol === 'file:' || url.protocol === 'http:' || url.protocol === 'https:' ? new URL('.', url).href : 'embedded';
}

/**
 * Opens four files by URL: local files (file:, Node) or downloads (http:, https:, data:,
 * blob:). The files of one checkpoint are all local or all fetched.
 * @param {string} label @param {Record<string, URL>} urls @param {AbortSignal} [signal] @param {typeof fetch} [fetchFn]
 */
async function openUrls(label, urls, signal, fetchFn) {
  const protocols = new Set(Object.values(urls).map((u) => u.protocol));
  if (protocols.has('file:')) {
    if (protocols.size > 1) throw new Gpt2Error(`the model's files must all be local or all remote (${label})`, 'arg');
    return openLocalFiles(label, urls, signal);
  }
  for (const p of protocols) {
    if (!['http:', 'https:', 'data:', 'blob:'].includes(p)) {
      throw new Gpt2Error(`unsupported model location ${label} (use an http(s) URL or a local folder)`, 'arg');
    }
  }
  return openUrlFiles(label, urls, signal, fetchFn || globalThis.fetch);
}

async function openLocalFiles(label, urls, signal) {
  if (!isNode) throw new Gpt2Error('local folders can only be read in Node; in a browser pass URLs or File objects', 'arg');
  const { stat, open } = await importNode('fs/promises');
  const { fileURLToPath } = await importNode('url');
  const files = {};
  for (const name of FILE_NAMES) {
    const path = fileURLToPath(urls[name]);
    let info;
    try {
      info = await stat(path);
    } catch (e) {
      throw new Gpt2Error(`${path}: cannot open (${e.code || e.message})`, 'io');
    }
    files[name] = {
      name,
      size: info.size,
      async *stream() {
        let fh;
        try {
          fh = await open(path, 'r');
          // one buffer, read into again and again (each chunk is consumed before the next
          // read): fresh chunks per read would pile up as garbage, tens of MB at the peak
          const buf = new Uint8Array(Math.max(1, Math.min(READ_BYTES, info.size)));
          for (;;) {
            throwIfAborted(signal);
            const { bytesRead } = await fh.read(buf, 0, buf.byteLength, null);
            if (bytesRead === 0) break;
            yield buf.subarray(0, bytesRead);
          }
        } catch (e) {
          if (signal && signal.aborted) throw abortError(signal);
          throw new Gpt2Error(`${path}: read failed (${e.code || e.message})`, 'io');
        } finally {
          await fh?.close();
        }
      },
    };
  }
  return { label: label.startsWith('file:') ? fileURLToPath(label) : label, files };
}

async function openUrlFiles(label, urls, signal, fetchFn) {
  if (typeof fetchFn !== 'function') throw new Gpt2Error('fetch() is not available here', 'arg');
  // Start all four requests at once: their headers give the total size for progress.
  const settled = await Promise.allSettled(FILE_NAMES.map(async (name) => {
    const href = urls[name].href;
    let r;
    try {
      r = await fetchFn(href, { signal });
    } catch (e) {
      if (signal && signal.aborted) throw abortError(signal);
      throw new Gpt2Error(`cannot download ${href}: ${e.cause?.message || e.message}`, 'io');
    }
    if (!r.ok) {
      cancelBody(r);
      throw new Gpt2Error(`cannot download ${href}: ${httpStatus(r)}`, 'io');
    }
    return [name, r, href];
  }));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    // Do not leave the other downloads running (or holding connections) after a failure.
    for (const s of settled) if (s.status === 'fulfilled') cancelBody(s.value[1]);
    throw failed.reason;
  }
  const responses = settled.map((s) => s.value);
  const files = {};
  for (const [name, r, href] of responses) files[name] = fromResponse(name, r, href, signal);
  return { label, files };
}

/** Content-Length is the body size only when the body is not content-encoded. */
function responseSize(r) {
  const len = r.headers.get('content-length');
  const enc = r.headers.get('content-encoding');
  if (len === null || (enc && enc !== 'identity')) return undefined;
  const n = Number(len);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** Stops a response's body download if nobody is reading it. */
function cancelBody(r) {
  if (r.body && !r.body.locked) r.body.cancel().catch(() => {});
}

function fromResponse(name, r, label, signal) {
  return {
    name,
    size: responseSize(r),
    sizeFrom: 'the server\'s Content-Length',
    cancel: () => cancelBody(r),
    async *stream() {
      if (!r.body) {
        yield new Uint8Array(await r.arrayBuffer());
        return;
      }
      yield* readStream(r.body, `${label}`, signal);
    },
  };
}

async function* readStream(body, label, signal) {
  const reader = body.getReader();
  let got = 0;
  let done = false;
  try {
    for (;;) {
      let step;
      try {
        step = await readOrAbort(reader, signal);
      } catch (e) {
        if (signal && signal.aborted) throw abortError(signal);
        throw new Gpt2Error(`download of ${label} failed after ${got} bytes: ${e.cause?.message || e.message}`, 'io');
      }
      if (step.done) {
        done = true;
        return;
      }
      got += step.value.byteLength;
      yield step.value;
    }
  } finally {
    // Stopped early (the consumer failed or was aborted): stop the download too.
    if (!done) reader.cancel().catch(() => {});
    try {
      reader.releaseLock?.();
    } catch {
      // a read still pending after an abort (older streams throw here): nothing to release
    }
  }
}

/**
 * reader.read(), but rejecting as soon as signal aborts: a fetch body's read() can stay
 * pending forever when the signal aborts just as the body ends (seen with Node 20's fetch).
 */
function readOrAbort(reader, signal) {
  if (!signal) return reader.read();
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    reader.read().then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function openObjects(obj, signal) {
  const files = {};
  for (const name of FILE_NAMES) {
    const v = obj[name];
    if (v === undefined || v === null) throw new Gpt2Error(`the model object has no '${name}'`, 'arg');
    files[name] = fromObject(name, v, signal);
  }
  return { label: 'objects', files };
}

function fromObject(name, v, signal) {
  if (typeof Response !== 'undefined' && v instanceof Response) {
    if (!v.ok) throw new Gpt2Error(`${name}: response status ${v.status}`, 'io');
    return fromResponse(name, v, name, signal);
  }
  if (typeof Blob !== 'undefined' && v instanceof Blob) {
    return { name, size: v.size, stream: () => readStream(v.stream(), name, signal) };
  }
  if (typeof ReadableStream !== 'undefined' && v instanceof ReadableStream) {
    return { name, size: undefined, stream: () => readStream(v, name, signal) };
  }
  if (v instanceof ArrayBuffer) v = new Uint8Array(v);
  if (ArrayBuffer.isView(v)) {
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return { name, size: bytes.byteLength, async *stream() { yield bytes; } };
  }
  throw new Gpt2Error(`${name}: expected a Response, Blob, ReadableStream, ArrayBuffer or typed array`, 'arg');
}

/** Reads a whole (small) file into one Uint8Array, reporting each chunk to onChunk. */
export async function readAll(file, onChunk) {
  const parts = [];
  let n = 0;
  for await (const c of file.stream()) {
    parts.push(c.slice()); // a copy: the stream may reuse its chunk's memory
    n += c.byteLength;
    onChunk(c.byteLength);
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
