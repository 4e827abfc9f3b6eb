// A stand-in for the Hugging Face Hub on 127.0.0.1 (ephemeral port), for the downloader's
// tests. It serves checkpoint folders as repositories: GET/HEAD /<owner>/<name>/resolve/main/<file>.
// Like the Hub:
//   - small files (config.json, vocab.json, merges.txt) answer 200 directly, with an ETag;
//   - model.safetensors (an LFS file on the Hub) answers 302 to /cdn/<sha256>, carrying
//     X-Linked-Etag: "<sha256>" (computed here with node:crypto from the served bytes),
//     X-Linked-Size and ETag; the /cdn/ URL serves the bytes;
//   - Range requests get 206 with Content-Range, or 416 with "bytes */SIZE";
//   - an unknown repository answers 401 with X-Error-Code: RepoNotFound (the Hub does not
//     tell strangers whether a private repository exists), an unknown file 404 with
//     X-Error-Code: EntryNotFound; with faults.plainErrors both are a bare 404, as from a
//     plain static server;
//   - a renamed repository (the `renamed` map, old id -> new id) answers 307 with a relative
//     Location to the new id's URL.
// Faults for model.safetensors' bytes, set on server.faults (each count is used up):
//   dropAfter: N, drops: K   the first K bodies stop after N bytes (socket destroyed)
//   dropAfter: N, stalls: K  the first K bodies stop after N bytes and the connection stays open
//   corrupt: K               the first K bodies have one byte flipped (in the middle)
//   ignoreRange: true        answers every request with 200 and the whole file
//   chunkDelayMs: D          sends 16 KB chunks D ms apart (for abort tests)
//   hang: true               never answers any request (for timeouts)
//   fail: K                  the first K requests for the bytes answer 503 Service Unavailable
// A folder that lacks a file serves the repository without it.
// Records every request (server.log: { method, path, range, status }) and the body bytes sent
// for model.safetensors (server.bytesSent).
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const FILES = ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors'];
const LFS = 'model.safetensors';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the server.
 * @param {Record<string, string>} repos repository id ("owner/name") -> folder to serve
 */
export async function serveHub(repos, renamed = {}) {
  const data = new Map(); // repo -> { file -> Buffer }
  const byHash = new Map(); // sha256 -> Buffer
  for (const [repo, folder] of Object.entries(repos)) {
    const files = {};
    for (const f of FILES) if (existsSync(join(folder, f))) files[f] = readFileSync(join(folder, f));
    data.set(repo, files);
    if (files[LFS]) byHash.set(sha256(files[LFS]), files[LFS]);
  }
  const log = [];
  const sockets = new Set();
  const state = { faults: {}, bytesSent: 0 };

  const server = createServer(async (req, res) => {
    const entry = { method: req.method, path: req.url, range: req.headers.range ?? null, status: 0 };
    log.push(entry);
    const answer = (status, headers, body) => {
      entry.status = status;
      res.writeHead(status, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (state.faults.hang) return; // never answers
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(req.url);
    if (cdn && byHash.has(cdn[1])) {
      await sendBytes(req, res, entry, byHash.get(cdn[1]), true);
      return;
    }
    const m = /^\/(.+)\/resolve\/main\/([^/]+)$/.exec(req.url);
    if (m && Object.hasOwn(renamed, m[1])) {
      answer(307, { Location: `/${renamed[m[1]]}/resolve/main/${m[2]}`, 'Content-Length': '0' });
      return;
    }
    const plain = state.faults.plainErrors;
    if (!m || !data.has(m[1])) {
      if (plain) answer(404, { 'Content-Type': 'text/plain' }, 'Not found');
      else answer(401, { 'Content-Type': 'text/plain', 'X-Error-Code': 'RepoNotFound' }, 'Repository not found');
      return;
    }
    const body = data.get(m[1])[m[2]];
    if (!body) {
      answer(404, { 'Content-Type': 'text/plain', ...(plain ? {} : { 'X-Error-Code': 'EntryNotFound' }) }, 'Entry not found');
      return;
    }
    if (m[2] === LFS) {
      const hash = sha256(body);
      answer(302, {
        Location: `/cdn/${hash}`,
        'X-Linked-Etag': `"${hash}"`,
        'X-Linked-Size': String(body.length),
        ETag: `"${hash}"`,
        'Content-Length': '0',
      });
      return;
    }
    await sendBytes(req, res, entry, body, false);
  });

  /** Answers GET/HEAD for bytes, with Range support and the faults (lfs: model.safetensors). */
  async function sendBytes(req, res, entry, body, lfs) {
    const f = lfs ? state.faults : {};
    if (f.fail > 0) {
      f.fail--;
      entry.status = 503;
      res.writeHead(503, { 'Content-Type': 'text/plain' }).end('busy');
      return;
    }
    const headers = { 'Content-Type': 'application/octet-stream', ETag: `"${sha256(body).slice(0, 40)}"`, 'Accept-Ranges': 'bytes' };
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !f.ignoreRange) {
      start = Number(range[1]);
      if (start >= body.length) {
        entry.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      headers['Content-Range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    }
    entry.status = start > 0 || headers['Content-Range'] ? 206 : 200;
    let out = body.subarray(start);
    headers['Content-Length'] = String(out.length);
    res.writeHead(entry.status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (f.corrupt > 0) {
      f.corrupt--;
      out = Buffer.from(out);
      out[out.length >> 1] ^= 0x01;
    }
    let limit = out.length;
    let drop = false, stall = false;
    if (f.drops > 0) {
      f.drops--;
      limit = Math.min(limit, f.dropAfter);
      drop = true;
    } else if (f.stalls > 0) {
      f.stalls--;
      limit = Math.min(limit, f.dropAfter);
      stall = true;
    }
    const step = f.chunkDelayMs ? 16384 : 65536;
    for (let at = 0; at < limit; at += step) {
      const piece = out.subarray(at, Math.min(limit, at + step));
      if (lfs) state.bytesSent += piece.length;
      const ok = res.write(piece);
      if (!ok) await new Promise((r) => res.once('drain', r));
      if (f.chunkDelayMs) await sleep(f.chunkDelayMs);
      if (res.destroyed) return;
    }
    if (stall) return; // silence, until the client gives up (or close())
    if (drop) {
      // Let the bytes reach the client, then cut the connection mid-body.
      await new Promise((r) => setTimeout(r, 20));
      res.socket?.destroy();
      return;
    }
    res.end();
  }

  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    log,
    /** Faults for the next model.safetensors bodies (see the top of this file). */
    get faults() { return state.faults; },
    set faults(v) { state.faults = v; },
    /** Body bytes of model.safetensors sent so far. */
    get bytesSent() { return state.bytesSent; },
    /** Forgets the log and the byte count. */
    reset() {
      log.length = 0;
      state.bytesSent = 0;
      state.faults = {};
    },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** The SHA-256 of bytes, in hex. */
export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}
