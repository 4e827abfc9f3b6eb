#!/usr/bin/env node
// serve.mjs - a small static server of the repository for the browser demo and tests.
//
//   node scripts/serve.mjs [--port 8080] [--host 127.0.0.1]     then open the printed URL
//
// Serves the repository root (so /web/, /js/, /dist/ and /models/ are reachable; / redirects
// to /web/), with the headers that make the page cross-origin isolated (COOP same-origin,
// COEP require-corp, CORP same-origin) on every response, correct MIME types (.wasm as
// application/wasm for streaming compilation), Content-Length, byte ranges, and
// Cache-Control: no-cache. Only GET and HEAD; no directory listings; nothing outside the
// root (also through symbolic links). Listens on the loopback interface only.
//
// As a module: const server = await startServer({ port: 0 }); ... server.counts['/models/model.safetensors'];
// await server.close();
//
// /dist/ can come from another build's output folder: startServer({ distDir }) or the
// environment variable GPT2_WASM_DIST (the one scripts/build-wasm.sh and the Node API read),
// e.g. GPT2_WASM_DIST=dist-web node scripts/serve.mjs. Default: the root's dist/.
//
// /dist/precache.json, the list of files the page's service worker (sw.js) keeps offline with
// their hashes and the version derived from them, is computed from the files on each request
// (scripts/precache.mjs), so it always matches what is served.
import http from 'node:http';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { precacheManifest } from './precache.mjs';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** MIME types by file extension. */
export const MIME_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
};

/**
 * Starts the server.
 * @param {object} [options]
 * @param {number} [options.port=0] the port (0: any free one)
 * @param {string} [options.host='127.0.0.1'] a loopback address ('127.0.0.1', 'localhost' or '::1')
 * @param {string} [options.root] the folder served (default: the repository root)
 * @param {string} [options.distDir] the folder served as /dist/ (default: $GPT2_WASM_DIST if set,
 *   relative to the working directory, else the root's dist/)
 * @param {(req: http.IncomingMessage, res: http.ServerResponse) => boolean|void} [options.onRequest]
 *   called first for every request (after it is counted); return true when it has answered
 *   the request itself (tests use this to inject failures)
 * @returns {Promise<{ url: string, port: number, close: () => Promise<void>, counts: Record<string, number> }>}
 *   url: the server's base URL ('http://127.0.0.1:PORT/'); counts: requests per path
 *   (decoded pathname, without the query)
 */
export async function startServer({ port = 0, host = '127.0.0.1', root = REPO_ROOT, distDir = process.env.GPT2_WASM_DIST || undefined, onRequest } = {}) {
  if (!LOOPBACK.has(host)) throw new Error(`serve.mjs listens on the loopback interface only, not ${host}`);
  const rootReal = await realpath(path.resolve(root));
  let distReal = null;
  if (distDir) {
    try {
      distReal = await realpath(path.resolve(distDir));
    } catch {
      throw new Error(`serve.mjs: the /dist/ folder ${distDir} does not exist (build it first)`);
    }
  }
  const counts = Object.create(null);
  const server = http.createServer((req, res) => {
    handle(req, res, { rootReal, distReal, counts, onRequest }).catch((e) => {
      if (!res.headersSent) send(res, 500, `internal error: ${e.message}\n`);
      else res.destroy(e);
    });
  });
  server.keepAliveTimeout = 2000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actual = server.address().port;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${hostInUrl}:${actual}/`,
    port: actual,
    counts,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections?.();
    }),
  };
}

async function handle(req, res, { rootReal, distReal, counts, onRequest }) {
  let pathname;
  try {
    pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  } catch {
    return send(res, 400, 'bad request\n');
  }
  counts[pathname] = (counts[pathname] || 0) + 1;
  if (onRequest && onRequest(req, res) === true) return;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'method not allowed\n');
  }
  if (pathname === '/') return redirect(res, '/web/');
  if (pathname === '/dist/precache.json') {
    const text = JSON.stringify(await precacheManifest({ root: rootReal, distDir: distReal || undefined }));
    baseHeaders(res);
    res.setHeader('Content-Type', MIME_TYPES['.json']);
    res.setHeader('Content-Length', Buffer.byteLength(text));
    return res.end(req.method === 'HEAD' ? undefined : text);
  }
  if (pathname.includes('\0')) return send(res, 400, 'bad request\n');

  // Resolve inside the root (or the /dist/ folder): the normalized path, then the real path
  // (symbolic links).
  let base = rootReal;
  let rel = pathname;
  if (distReal && (pathname === '/dist' || pathname.startsWith('/dist/'))) {
    base = distReal;
    rel = pathname.slice('/dist'.length) || '/';
  }
  const file = path.join(base, path.normalize(rel));
  if (!inside(base, file)) return send(res, 404, 'not found\n');
  let real, info;
  try {
    real = await realpath(file);
    info = await stat(real);
  } catch {
    return send(res, 404, 'not found\n');
  }
  if (!inside(base, real)) return send(res, 404, 'not found\n');
  if (info.isDirectory()) {
    if (!pathname.endsWith('/')) return redirect(res, encodeURI(pathname) + '/');
    const index = path.join(real, 'index.html');
    try {
      const indexInfo = await stat(index);
      if (!indexInfo.isFile()) throw new Error();
      return sendFile(req, res, index, indexInfo);
    } catch {
      return send(res, 404, 'not found\n'); // no directory listings
    }
  }
  if (!info.isFile()) return send(res, 404, 'not found\n');
  return sendFile(req, res, real, info);
}

function inside(root, p) {
  return p === root || p.startsWith(root + path.sep);
}

function baseHeaders(res) {
  for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v);
  res.setHeader('Cache-Control', 'no-cache');
}

function send(res, status, text) {
  baseHeaders(res);
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

function redirect(res, location) {
  baseHeaders(res);
  res.statusCode = 302;
  res.setHeader('Location', location);
  res.setHeader('Content-Length', 0);
  res.end();
}

function sendFile(req, res, file, info) {
  baseHeaders(res);
  // The service worker asks model hosts whether they answer (sw.js, probe()) with opaque
  // requests, which COEP require-corp would block: it is served without COEP. (It controls
  // the pages' isolation through the headers of what it serves, not its own.)
  if (req.url.split('?')[0] === '/sw.js') res.removeHeader('Cross-Origin-Embedder-Policy');
  const size = info.size;
  const etag = `"${size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
  res.setHeader('Content-Type', MIME_TYPES[path.extname(file).toLowerCase()] || 'application/octet-stream');
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', etag);
  res.setHeader('Last-Modified', info.mtime.toUTCString());

  if (req.headers['if-none-match'] === etag && !req.headers.range) {
    res.statusCode = 304;
    return res.end();
  }

  let start = 0, end = size - 1;
  const range = req.headers.range;
  const ifRange = req.headers['if-range'];
  if (range && (!ifRange || ifRange === etag)) {
    const r = parseRange(range, size);
    if (r === 'invalid') {
      // Not a single bytes range we understand: send the whole file (allowed by RFC 9110).
    } else if (r === null) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.setHeader('Content-Length', 0);
      return res.end();
    } else {
      [start, end] = r;
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    }
  }
  const length = size === 0 ? 0 : end - start + 1;
  res.setHeader('Content-Length', length);
  if (req.method === 'HEAD' || length === 0) return res.end();
  const stream = createReadStream(file, { start, end, highWaterMark: 1 << 20 });
  stream.on('error', (e) => res.destroy(e));
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

/**
 * A single "bytes=" range: [start, end] (inclusive), null when unsatisfiable, or 'invalid'
 * (ignored: several ranges, other units, bad syntax).
 */
export function parseRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(String(header).trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  let start, end;
  if (m[1] === '') {
    const n = Number(m[2]); // the last n bytes
    if (n === 0) return null;
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return 'invalid';
  }
  if (start >= size || size === 0) return null;
  return [start, end];
}

function parseArgs(argv) {
  const out = { port: 8080, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? a.split(/=(.*)/s, 2) : [a, undefined];
    const value = () => inline ?? argv[++i];
    if (flag === '--port' || flag === '-p') {
      const v = value();
      out.port = Number(v);
      if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) throw new Error(`--port: not a port number: ${v}`);
    } else if (flag === '--host') {
      out.host = value();
    } else if (flag === '--help' || flag === '-h') {
      out.help = true;
    } else {
      throw new Error(`unknown option ${a}`);
    }
  }
  return out;
}

const isMain = process.argv[1] && (() => {
  try {
    return import.meta.url === pathToFileURL(process.argv[1]).href ||
      import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
  } catch {
    return false;
  }
})();

if (isMain) {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`serve.mjs: ${e.message}\nusage: node scripts/serve.mjs [--port N] [--host 127.0.0.1]`);
    process.exit(2);
  }
  if (args.help) {
    console.log('usage: node scripts/serve.mjs [--port N] [--host 127.0.0.1]\nServes the repository at http://HOST:PORT/ (the demo is /web/). Port 0: any free port.');
    process.exit(0);
  }
  try {
    const s = await startServer({ port: args.port, host: args.host });
    console.log(`gpt2-wasm demo: ${s.url}web/   (serving ${REPO_ROOT}; Ctrl+C to stop)`);
    const stop = () => s.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } catch (e) {
    console.error(`serve.mjs: ${e.code === 'EADDRINUSE' ? `port ${args.port} is in use (try --port 0)` : e.message}`);
    process.exit(1);
  }
}
