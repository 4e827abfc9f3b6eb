// A small HTTP server on 127.0.0.1 (ephemeral port) that serves a checkpoint folder in
// several ways, chosen by the first path segment:
//   /normal/FILE   Content-Length, whole body at once
//   /chunked/FILE  no Content-Length (chunked transfer), 4 KB chunks
//   /slow/FILE     chunked, 8 KB every 5 ms
//   /cut/FILE      Content-Length, but model.safetensors' socket is destroyed after half
//   /404/FILE      model.safetensors answers 404 Not Found (other files normal)
//   /overlong/FILE model.safetensors claims 1000 more bytes in Content-Length than it sends,
//                  then closes the connection
//   /short/FILE    model.safetensors claims 1000 fewer bytes than the file has (the client
//                  stops reading at the declared length)
// Counts requests per path (server.requests: Map path -> count) and records how each
// response ended (server.outcomes).
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const FILES = new Set(['config.json', 'vocab.json', 'merges.txt', 'model.safetensors']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts a server for folder; returns { url(mode), requests, count(prefix), close() }. */
export async function serveFolder(folder) {
  const cache = new Map();
  const bytes = (name) => {
    if (!cache.has(name)) cache.set(name, readFileSync(join(folder, name)));
    return cache.get(name);
  };
  const requests = new Map();
  const outcomes = [];
  const sockets = new Set();
  const server = createServer(async (req, res) => {
    requests.set(req.url, (requests.get(req.url) || 0) + 1);
    const sent = { bytes: 0 };
    const origWrite = res.write.bind(res);
    res.write = (chunk, ...rest) => { sent.bytes += chunk.length; return origWrite(chunk, ...rest); };
    res.on('close', () => {
      // 'complete': the whole body was written and flushed; 'closed': the connection ended first.
      outcomes.push({ path: req.url, outcome: res.writableFinished ? 'complete' : 'closed', bytes: sent.bytes });
    });
    // Usable cross-origin from the browser tests' cross-origin-isolated pages too.
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
    const [, mode, name] = req.url.split('/');
    if (!FILES.has(name)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    const body = bytes(name);
    try {
      switch (mode) {
        case 'normal':
          res.writeHead(200, { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' }).end(body);
          return;
        case 'chunked':
        case 'slow': {
          const step = mode === 'slow' ? 8192 : 4096;
          res.writeHead(200, { 'Content-Type': 'application/octet-stream' }); // no length: chunked
          for (let at = 0; at < body.length; at += step) {
            if (res.destroyed) return;
            res.write(body.subarray(at, at + step));
            if (mode === 'slow') await sleep(5);
            else await new Promise((r) => setImmediate(r));
          }
          res.end();
          return;
        }
        case 'cut':
          res.writeHead(200, { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' });
          if (name !== 'model.safetensors') {
            res.end(body);
            return;
          }
          res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket?.destroy(), 20));
          return;
        case 'overlong':
        case 'short': {
          if (name !== 'model.safetensors') {
            res.writeHead(200, { 'Content-Length': body.length }).end(body);
            return;
          }
          const claimed = body.length + (mode === 'overlong' ? 1000 : -1000);
          res.writeHead(200, { 'Content-Length': claimed, 'Content-Type': 'application/octet-stream' });
          if (mode === 'short') {
            // Node refuses to write past the declared length; send exactly what was promised.
            res.end(body.subarray(0, claimed));
            return;
          }
          res.write(body, () => setTimeout(() => res.socket?.destroy(), 20));
          return;
        }
        case '404':
          if (name === 'model.safetensors') {
            res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such file');
            return;
          }
          res.writeHead(200, { 'Content-Length': body.length }).end(body);
          return;
        default:
          res.writeHead(400).end('bad mode');
      }
    } catch {
      res.destroy();
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: (mode) => `http://127.0.0.1:${port}/${mode}/`,
    requests,
    /** How each response ended: [{ path, outcome: 'complete'|'closed', bytes }], in order of ending. */
    outcomes,
    /** Number of requests whose path starts with prefix. */
    count: (prefix) => [...requests].filter(([p]) => p.startsWith(prefix)).reduce((n, [, c]) => n + c, 0),
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
