// Loading through the JS API: streamed from a local HTTP server (normal, chunked, slow, cut
// off, 404), progress events, aborting a load, and every kind of source (objects of
// ArrayBuffers / Blobs / ReadableStreams / Responses, file:// URL, the embedded model).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { load, Gpt2Error, defaultModelUrl } from '../../js/index.js';
import {
  FILE_NAMES, assertAbortError, assertGpt2Error, collect, expected, fixture, fixtureBytes, fixtureTotal,
} from './helpers/common.mjs';
import { serveFolder } from './helpers/server.mjs';

const exp = expected('tiny-f32');
const english = exp.cases.find((c) => c.name === 'english');
const total = fixtureTotal('tiny-f32');
const stSize = fixtureBytes('tiny-f32')['model.safetensors'].byteLength;

/** The loaded model is the tiny-f32 fixture and works: greedy continuation of 'english'. */
async function assertWorks(model) {
  try {
    assert.equal(model.config.nVocab, 1257);
    const r = await collect(model.generate(english.ids, { temperature: 0, ignoreEot: true, maxTokens: 8 }));
    assert.deepEqual(r.tokens, english.greedy.slice(0, 8));
  } finally {
    model.dispose();
  }
}

/** Checks the progress events of a successful load. */
function assertProgress(events, { knownTotal }) {
  assert.ok(events.length >= 5, `several events, got ${events.length}`);
  const downloads = events.filter((e) => e.phase === 'download');
  const last = events[events.length - 1];
  assert.equal(last.phase, 'ready', 'the last event is ready');
  assert.equal(events.filter((e) => e.phase === 'ready').length, 1, 'one ready event');
  assert.equal(downloads.length, events.length - 1, 'only download events before ready');
  let prev = 0;
  for (const e of downloads) {
    assert.ok(FILE_NAMES.includes(e.file), `file ${e.file}`);
    assert.ok(e.loaded >= prev, `loaded is monotone (${prev} -> ${e.loaded})`);
    prev = e.loaded;
    if (knownTotal) assert.equal(e.total, total);
    else assert.equal(e.total, undefined, 'total unknown while downloading');
  }
  const seen = new Set(downloads.map((e) => e.file));
  for (const f of FILE_NAMES) assert.ok(seen.has(f), `progress for ${f}`);
  assert.equal(downloads[downloads.length - 1].loaded, total, 'last download event has every byte');
  if (knownTotal) assert.equal(downloads[downloads.length - 1].total, total);
  assert.equal(last.loaded, total);
  assert.equal(last.total, total);
}

let server;
before(async () => { server = await serveFolder(fixture('tiny-f32')); });
after(async () => { await server.close(); });

test('HTTP with Content-Length: loads, one request per file, progress with known total', async () => {
  const events = [];
  const before = server.count('/normal/');
  const model = await load(server.url('normal'), { onProgress: (e) => events.push({ ...e }) });
  assert.equal(server.count('/normal/') - before, 4, 'exactly four requests');
  for (const f of FILE_NAMES) assert.ok(server.requests.get(`/normal/${f}`) >= 1, `requested ${f}`);
  assertProgress(events, { knownTotal: true });
  await assertWorks(model);
});

test('HTTP URL object without trailing slash works too', async () => {
  const u = new URL(server.url('normal').replace(/\/$/, ''));
  await assertWorks(await load(u));
});

test('HTTP chunked transfer (no Content-Length): loads; total unknown until ready', async () => {
  const events = [];
  const model = await load(server.url('chunked'), { onProgress: (e) => events.push({ ...e }) });
  assertProgress(events, { knownTotal: false });
  const st = events.filter((e) => e.file === 'model.safetensors');
  assert.ok(st.length >= stSize / 65536, `many small chunks fed (${st.length} events)`);
  await assertWorks(model);
});

test('HTTP slow server (8 KB every 5 ms): loads', async () => {
  const events = [];
  const model = await load(server.url('slow'), { onProgress: (e) => events.push({ ...e }) });
  assertProgress(events, { knownTotal: false });
  await assertWorks(model);
});

test('HTTP connection cut mid model.safetensors: clear io error, then a retry works', async () => {
  const err = await assertGpt2Error(() => load(server.url('cut')), 'io');
  assert.match(err.message, /model\.safetensors/);
  assert.match(err.message, /download|truncat|failed|ended|incomplete/i);
  assert.equal(server.requests.get('/cut/model.safetensors'), 1);
  await assertWorks(await load(server.url('normal')));
});

test('HTTP 404: error names the URL and the status', async () => {
  const url = server.url('404');
  const err = await assertGpt2Error(() => load(url), 'io');
  assert.ok(err.message.includes(url + 'model.safetensors'), err.message);
  assert.match(err.message, /404/);
});

test('HTTP: a folder with no server at all gives an io error naming the URL', async () => {
  // Port 9 on 127.0.0.1 (discard) is closed here: connection refused.
  const err = await assertGpt2Error(() => load('http://127.0.0.1:9/m/'), 'io');
  assert.match(err.message, /127\.0\.0\.1:9\/m\/config\.json/);
});

test('the fetch option is used instead of the global fetch', async () => {
  const seen = [];
  const model = await load('https://models.invalid/tiny/', {
    fetch: async (url, init) => {
      seen.push(url);
      assert.ok(init && 'signal' in init, 'the signal is passed on');
      const name = new URL(url).pathname.split('/').pop();
      return new Response(fixtureBytes('tiny-f32')[name]);
    },
  });
  assert.deepEqual(seen.sort(), FILE_NAMES.map((f) => `https://models.invalid/tiny/${f}`).sort());
  await assertWorks(model);
});

test('progress: a local folder reports the sum of the four file sizes', async () => {
  const events = [];
  const model = await load(fixture('tiny-f32'), { onProgress: (e) => events.push({ ...e }) });
  assertProgress(events, { knownTotal: true });
  await assertWorks(model);
});

test('abort during a slow HTTP load rejects with AbortError; the next load works', async () => {
  const ac = new AbortController();
  let abortedAt = -1;
  let after = 0;
  const started = Date.now();
  const p = load(server.url('slow'), {
    signal: ac.signal,
    onProgress: (e) => {
      if (abortedAt >= 0) after++;
      if (abortedAt < 0 && e.file === 'model.safetensors' && e.loaded > total - stSize + 50000) {
        abortedAt = e.loaded;
        ac.abort();
      }
    },
  });
  await assertAbortError(() => p);
  assert.ok(abortedAt > 0, 'aborted after some bytes of the weights');
  assert.ok(after <= 1, `at most one chunk reported after the abort, got ${after}`);
  assert.ok(Date.now() - started < 5000, 'rejected promptly');
  await assertWorks(await load(server.url('slow')));
});

test('abort during a local folder load rejects with AbortError', async () => {
  const ac = new AbortController();
  const p = load(fixture('tiny-f32'), {
    signal: ac.signal,
    onProgress: (e) => { if (e.file === 'merges.txt') ac.abort(); },
  });
  await assertAbortError(() => p);
});

/** Rejects with 'timed out' if p has not settled within ms. */
function within(p, ms, what) {
  let timer;
  return Promise.race([p, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled after ${ms} ms`)), ms);
  })]).finally(() => clearTimeout(timer));
}

test('abort at the first progress event, repeatedly: always rejects, never hangs', async () => {
  // Regression: aborting just as a small file's body ended could leave fetch's read()
  // pending forever (about 1 load in 6 hung before sources.js raced reads with the signal).
  for (let i = 0; i < 25; i++) {
    const ac = new AbortController();
    const reason = i % 2 ? new Error('user navigated away') : undefined;
    const p = load(server.url(i % 3 ? 'slow' : 'normal'), { signal: ac.signal, onProgress: () => ac.abort(reason) });
    await within(assert.rejects(p, (e) => (reason ? e === reason : e.name === 'AbortError')), 3000, `round ${i}`);
  }
});

test('abort while a caller-provided stream stalls: rejects with AbortError', async () => {
  const b = fixtureBytes('tiny-f32');
  const obj = { ...b, 'model.safetensors': new ReadableStream({ start(c) { c.enqueue(b['model.safetensors'].slice(0, 1000)); } }) };
  const ac = new AbortController();
  const p = load(obj, { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await within(assertAbortError(() => p), 3000, 'stalled stream load');
});

test('an already aborted signal rejects immediately with AbortError, with no request', async () => {
  const before = server.count('/normal/');
  const ac = new AbortController();
  ac.abort();
  await assertAbortError(() => load(server.url('normal'), { signal: ac.signal }));
  await assertAbortError(() => load(fixture('tiny-f32'), { signal: ac.signal }));
  assert.equal(server.count('/normal/'), before, 'nothing was requested');
});

test('source: object of ArrayBuffers (and of typed arrays)', async () => {
  const b = fixtureBytes('tiny-f32');
  const events = [];
  const obj = Object.fromEntries(FILE_NAMES.map((f) => [f, b[f].buffer.slice(b[f].byteOffset, b[f].byteOffset + b[f].byteLength)]));
  const model = await load(obj, { onProgress: (e) => events.push({ ...e }) });
  assertProgress(events, { knownTotal: true });
  await assertWorks(model);
  // Typed arrays that are views into a larger buffer: only the view's bytes count.
  const views = {};
  for (const f of FILE_NAMES) {
    const big = new Uint8Array(b[f].byteLength + 16).fill(0xAB);
    big.set(b[f], 8);
    views[f] = big.subarray(8, 8 + b[f].byteLength);
  }
  await assertWorks(await load(views));
});

test('source: object of Blobs', async () => {
  const b = fixtureBytes('tiny-f32');
  const events = [];
  const model = await load(Object.fromEntries(FILE_NAMES.map((f) => [f, new Blob([b[f]])])),
    { onProgress: (e) => events.push({ ...e }) });
  assertProgress(events, { knownTotal: true });
  await assertWorks(model);
});

test('source: object of ReadableStreams (no sizes: total undefined while downloading)', async () => {
  const b = fixtureBytes('tiny-f32');
  const stream = (bytes) => {
    let at = 0;
    return new ReadableStream({
      pull(c) {
        if (at >= bytes.length) return c.close();
        c.enqueue(bytes.slice(at, at + 10000)); // odd chunk size: tensors straddle chunks
        at += 10000;
      },
    });
  };
  const events = [];
  const model = await load(Object.fromEntries(FILE_NAMES.map((f) => [f, stream(b[f])])),
    { onProgress: (e) => events.push({ ...e }) });
  assertProgress(events, { knownTotal: false });
  await assertWorks(model);
});

test('source: object of Responses', async () => {
  const b = fixtureBytes('tiny-f32');
  const events = [];
  const model = await load(Object.fromEntries(FILE_NAMES.map((f) => [f, new Response(b[f])])),
    { onProgress: (e) => events.push({ ...e }) });
  assert.equal(events[events.length - 1].phase, 'ready');
  assert.equal(events[events.length - 1].loaded, total);
  await assertWorks(model);
  // A failed Response is refused with its status.
  const bad = Object.fromEntries(FILE_NAMES.map((f) => [f, new Response(b[f])]));
  bad['vocab.json'] = new Response('gone', { status: 410 });
  await assertGpt2Error(() => load(bad), 'io', /vocab\.json.*410/);
});

test('source: a file:// URL, and a relative folder path', async () => {
  await assertWorks(await load(pathToFileURL(fixture('tiny-f32') + '/')));
  await assertWorks(await load(pathToFileURL(fixture('tiny-f32')).href));
  const rel = fixture('tiny-f32').slice(process.cwd().length + 1);
  if (fixture('tiny-f32').startsWith(process.cwd() + '/')) await assertWorks(await load(rel));
});

test('source: object with a missing or unusable file is refused (code arg)', async () => {
  const b = fixtureBytes('tiny-f32');
  const obj = { ...b };
  delete obj['merges.txt'];
  await assertGpt2Error(() => load(obj), 'arg', /merges\.txt/);
  await assertGpt2Error(() => load({ ...b, 'config.json': 42 }), 'arg', /config\.json/);
  await assertGpt2Error(() => load('ftp://example.com/model/'), 'arg', /ftp:/);
  await assertGpt2Error(() => load(12), 'arg');
});

test('the embedded default model: load() works, vocab 50257', async () => {
  const events = [];
  const model = await load(undefined, { onProgress: (e) => events.push({ ...e }) });
  try {
    assert.equal(model.config.nVocab, 50257);
    assert.ok(defaultModelUrl() instanceof URL);
    assert.equal(defaultModelUrl().protocol, 'file:');
    assert.equal(events[events.length - 1].phase, 'ready');
    // The real GPT-2 tokenizer.
    assert.deepEqual(model.tokenize('Hello world'), [15496, 995]);
    assert.deepEqual(model.tokenize(' Hello world'), [18435, 995]);
    assert.equal(model.detokenize([15496, 995]), 'Hello world');
    const r = await collect(model.generate('Once upon a time', { maxTokens: 5, temperature: 0, ignoreEot: true }));
    assert.equal(r.summary.tokens, 5);
    assert.ok(r.tokens.every((t) => t >= 0 && t < 50257));
  } finally {
    model.dispose();
  }
  const again = await load();
  assert.equal(again.config.nVocab, 50257);
  again.dispose();
  assert.ok(new Gpt2Error('x', 'io') instanceof Error);
});
