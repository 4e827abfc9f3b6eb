// The model downloader (js/node/download.js) against a local stand-in for the Hugging Face Hub
// (helpers/hf_server.mjs, 127.0.0.1 only) serving the tiny-f32 fixture as repositories.
// Expected values come from outside the downloader: the fixture's bytes and sizes read with
// node:fs, the SHA-256 the server computes with node:crypto, and the logits of loading the
// fixture folder itself.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { download, load } from '../../js/index.js';
import { assertAbortError, assertGpt2Error, fixture, FILE_NAMES } from './helpers/common.mjs';
import { serveHub } from './helpers/hf_server.mjs';

const source = fixture('tiny-f32');
const bytes = Object.fromEntries(FILE_NAMES.map((f) => [f, readFileSync(join(source, f))]));
const modelSize = statSync(join(source, 'model.safetensors')).size;
const totalSize = FILE_NAMES.reduce((n, f) => n + statSync(join(source, f)).size, 0);

// The folder without model.safetensors, for a repository that lacks it.
const noWeights = mkdtempSync(join(tmpdir(), 'gpt2-dl-src-'));
for (const f of ['config.json', 'vocab.json', 'merges.txt']) writeFileSync(join(noWeights, f), bytes[f]);

let hub;
let work;
before(async () => {
  hub = await serveHub({
    'openai-community/gpt2': source,
    'openai-community/gpt2-medium': source,
    'openai-community/gpt2-large': source,
    'openai-community/gpt2-xl': source,
    'distilbert/distilgpt2': source,
    'someone/my-gpt2.finetune_v2': source,
    'someone/pytorch-only': noWeights,
  }, { 'oldname/gpt2-renamed': 'distilbert/distilgpt2' });
});
after(async () => {
  await hub.close();
  rmSync(noWeights, { recursive: true, force: true });
});
beforeEach(() => {
  hub.reset();
  work = mkdtempSync(join(tmpdir(), 'gpt2-dl-'));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const opts = (extra = {}) => ({ baseUrl: hub.baseUrl, retryDelay: 5, ...extra });
const target = (name = 'model') => join(work, name);

/** Asserts the folder holds exactly the four files, equal to the fixture's. */
function assertComplete(dir) {
  assert.deepEqual(readdirSync(dir).sort(), [...FILE_NAMES].sort(), 'the four files and nothing else');
  for (const f of FILE_NAMES) assert.ok(readFileSync(join(dir, f)).equals(bytes[f]), `${f} equals the served file`);
}

const bodyGets = () => hub.log.filter((r) => r.method === 'GET' && r.path.startsWith('/cdn/'));

test('downloads distilgpt2 into a folder that load() accepts, with the same logits as the source', async () => {
  const events = [];
  const dir = await download('distilgpt2', opts({ dir: target(), onProgress: (e) => events.push(e) }));
  assert.equal(dir, target());
  assertComplete(dir);

  // The canonical repository, the Hub's URL layout, metadata before bodies.
  const paths = hub.log.map((r) => `${r.method} ${r.path}`);
  for (const f of FILE_NAMES) {
    assert.ok(paths.includes(`HEAD /distilbert/distilgpt2/resolve/main/${f}`), `HEAD of ${f}`);
    assert.ok(paths.includes(`GET /distilbert/distilgpt2/resolve/main/${f}`), `GET of ${f}`);
  }
  assert.ok(hub.log.findIndex((r) => r.method === 'GET') > hub.log.findLastIndex((r) => r.method === 'HEAD'));
  assert.equal(hub.bytesSent, modelSize, 'the weights were sent once');

  // Progress: the total is known from the start, loaded only grows, and ends at the total.
  const downloads = events.filter((e) => e.phase === 'download');
  assert.ok(downloads.length >= 4);
  for (const e of downloads) assert.equal(e.total, totalSize);
  for (let i = 1; i < downloads.length; i++) assert.ok(downloads[i].loaded >= downloads[i - 1].loaded);
  const lastWeights = downloads.filter((e) => e.file === 'model.safetensors').at(-1);
  assert.deepEqual([lastWeights.fileLoaded, lastWeights.fileTotal], [modelSize, modelSize]);
  assert.deepEqual(events.at(-1), { phase: 'done', file: null, loaded: totalSize, total: totalSize, transferred: totalSize });

  const [a, b] = await Promise.all([load(dir), load(source)]);
  try {
    const ids = a.tokenize('Hello world, the quick brown fox');
    assert.deepEqual(ids, b.tokenize('Hello world, the quick brown fox'));
    assert.deepEqual(a.logits(ids), b.logits(ids));
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('model names map to the canonical repositories; owner/name ids work; the default folder is the name', async () => {
  const names = {
    gpt2: 'openai-community/gpt2', 'gpt2-medium': 'openai-community/gpt2-medium',
    'gpt2-large': 'openai-community/gpt2-large', 'gpt2-xl': 'openai-community/gpt2-xl',
    distilgpt2: 'distilbert/distilgpt2', 'someone/my-gpt2.finetune_v2': 'someone/my-gpt2.finetune_v2',
  };
  const cwd = process.cwd();
  process.chdir(work);
  try {
    for (const [name, repo] of Object.entries(names)) {
      hub.reset();
      const dir = await download(name, opts());
      assert.equal(dir, join(work, repo.split('/')[1]));
      assertComplete(dir);
      assert.ok(hub.log.every((r) => r.path.startsWith(`/${repo}/resolve/main/`) || r.path.startsWith('/cdn/')), name);
    }
  } finally {
    process.chdir(cwd);
  }
  hub.reset();
  for (const bad of ['gpt3', '', 'a/b/c', '../x', 'owner/', '/name', 'a/..', 'a b/c']) {
    await assertGpt2Error(() => download(bad, opts({ dir: target() })), 'arg', /unknown model|must be/);
  }
  await assertGpt2Error(() => download('gpt2', { dir: target(), baseUrl: 'ftp://example.com' }), 'arg', /http/);
  assert.equal(hub.log.length, 0, 'bad arguments make no requests');
});

test('GPT2_WASM_BASE_URL is the default base URL', async () => {
  const saved = process.env.GPT2_WASM_BASE_URL;
  process.env.GPT2_WASM_BASE_URL = `${hub.baseUrl}/`;
  try {
    const dir = await download('gpt2', { dir: target(), retryDelay: 5 });
    assertComplete(dir);
    assert.ok(hub.log.some((r) => r.path === '/openai-community/gpt2/resolve/main/config.json'));
  } finally {
    if (saved === undefined) delete process.env.GPT2_WASM_BASE_URL;
    else process.env.GPT2_WASM_BASE_URL = saved;
  }
});

test('a connection dropped mid-file is resumed with a Range request from the .part', async () => {
  const cut = 300000;
  hub.faults = { dropAfter: cut, drops: 1 };
  const dir = await download('distilgpt2', opts({ dir: target() }));
  assertComplete(dir);
  const gets = bodyGets();
  assert.equal(gets.length, 2, JSON.stringify(gets));
  assert.equal(gets[0].range, null);
  const from = Number(/^bytes=(\d+)-$/.exec(gets[1].range)?.[1]);
  assert.ok(from > 0 && from <= cut, `resumed from ${gets[1].range}`);
  assert.equal(gets[1].status, 206);
  assert.ok(hub.bytesSent < 2 * modelSize, `${hub.bytesSent} bytes sent for a ${modelSize}-byte file`);
  assert.equal(hub.bytesSent, cut + (modelSize - from), 'the second answer sent only the bytes from the resume point on');
});

test('a 503 answer is retried; one that persists is a clear error', async () => {
  hub.faults = { fail: 2 };
  assertComplete(await download('distilgpt2', opts({ dir: target() })));
  assert.deepEqual(bodyGets().map((r) => r.status), [503, 503, 200]);

  rmSync(target(), { recursive: true });
  hub.reset();
  hub.faults = { fail: 10 };
  await assertGpt2Error(() => download('distilgpt2', opts({ dir: target(), retries: 2 })), 'io',
    /^http:\/\/127\.0\.0\.1:\d+\/distilbert\/distilgpt2\/resolve\/main\/model\.safetensors answered HTTP 503 Service Unavailable$/);
  assert.equal(bodyGets().length, 3, 'the first try and 2 retries');
  assert.equal(existsSync(join(target(), 'model.safetensors')), false);
});

test('a connection that stalls mid-file times out and is resumed', async () => {
  hub.faults = { dropAfter: 200000, stalls: 1 };
  const dir = await download('distilgpt2', opts({ dir: target(), timeout: 300 }));
  assertComplete(dir);
  const gets = bodyGets();
  assert.equal(gets.length, 2);
  assert.equal(gets[1].status, 206);
  const from = Number(/^bytes=(\d+)-$/.exec(gets[1].range)?.[1]);
  assert.ok(from > 0 && from <= 200000, gets[1].range);
});

test('an aborted download keeps only the .part, and the next call continues it', async () => {
  hub.faults = { chunkDelayMs: 10 };
  const controller = new AbortController();
  await assertAbortError(() => download('distilgpt2', opts({
    dir: target(),
    signal: controller.signal,
    onProgress: (e) => { if (e.file === 'model.safetensors' && e.fileLoaded >= 100000) controller.abort(); },
  })));
  const part = join(target(), 'model.safetensors.part');
  assert.equal(existsSync(join(target(), 'model.safetensors')), false, 'no final file');
  assert.ok(existsSync(part), 'the .part is kept');
  const kept = readFileSync(part);
  assert.ok(kept.length >= 100000 && kept.length < modelSize, `${kept.length} bytes kept`);
  assert.ok(kept.equals(bytes['model.safetensors'].subarray(0, kept.length)), 'the .part is a prefix of the file');

  hub.reset();
  const events = [];
  const dir = await download('distilgpt2', opts({ dir: target(), onProgress: (e) => events.push(e) }));
  assertComplete(dir);
  const gets = bodyGets();
  assert.equal(gets.length, 1);
  assert.equal(gets[0].range, `bytes=${kept.length}-`);
  assert.equal(hub.bytesSent, modelSize - kept.length, 'only the missing bytes were fetched');
  // Progress counts the kept bytes as loaded, but not as transferred.
  const resumed = events.find((e) => e.file === 'model.safetensors');
  assert.equal(resumed.fileLoaded, kept.length);
  assert.equal(events.at(-1).loaded, totalSize);
  assert.equal(events.at(-1).transferred, modelSize - kept.length, 'the small files were kept from the first call');
});

test('a corrupted byte is caught by the SHA-256; the .part is deleted and a retry succeeds', async () => {
  hub.faults = { corrupt: 1 };
  const err = await assertGpt2Error(() => download('distilgpt2', opts({ dir: target() })), 'io',
    /model\.safetensors .*corrupt: its SHA-256 is [0-9a-f]{64}, but the server's is [0-9a-f]{64}; the partial file was deleted/);
  assert.doesNotMatch(err.message, /\n/);
  assert.equal(existsSync(join(target(), 'model.safetensors')), false);
  assert.equal(existsSync(join(target(), 'model.safetensors.part')), false);
  const dir = await download('distilgpt2', opts({ dir: target() }));
  assertComplete(dir);
});

test('a server that ignores Range restarts the file cleanly from its 200 answer', async () => {
  mkdirp(target());
  const garbage = Buffer.alloc(200000, 0xab); // not a prefix of the real file
  writeFileSync(join(target(), 'model.safetensors.part'), garbage);
  hub.faults = { ignoreRange: true };
  const dir = await download('distilgpt2', opts({ dir: target() }));
  assertComplete(dir);
  const gets = bodyGets();
  assert.equal(gets.length, 1);
  assert.deepEqual([gets[0].range, gets[0].status], [`bytes=${garbage.length}-`, 200]);
});

test('a complete .part gets 416 and is verified and kept; a too long .part starts over', async () => {
  mkdirp(target());
  writeFileSync(join(target(), 'model.safetensors.part'), bytes['model.safetensors']);
  let dir = await download('distilgpt2', opts({ dir: target() }));
  assertComplete(dir);
  assert.deepEqual(bodyGets().map((r) => [r.range, r.status]), [[`bytes=${modelSize}-`, 416]]);
  assert.equal(hub.bytesSent, 0);

  hub.reset();
  rmSync(join(target(), 'model.safetensors'));
  writeFileSync(join(target(), 'model.safetensors.part'), Buffer.concat([bytes['model.safetensors'], Buffer.from('extra')]));
  dir = await download('distilgpt2', opts({ dir: target() }));
  assertComplete(dir);
  assert.deepEqual(bodyGets().map((r) => [r.range, r.status]), [[null, 200]]);
});

test('finished files are kept when they match the server, and replaced when they do not', async () => {
  await download('distilgpt2', opts({ dir: target() }));
  hub.reset();
  await download('distilgpt2', opts({ dir: target() }));
  assert.equal(hub.bytesSent, 0, 'nothing fetched again');
  assert.equal(hub.log.filter((r) => r.method === 'GET').length, 0);

  // Same size, other bytes: the SHA-256 differs, so it is downloaded again.
  const changed = Buffer.from(bytes['model.safetensors']);
  changed[1000] ^= 0xff;
  writeFileSync(join(target(), 'model.safetensors'), changed);
  hub.reset();
  await download('distilgpt2', opts({ dir: target() }));
  assertComplete(target());
  assert.equal(hub.bytesSent, modelSize);
});

test('an unreachable server is one clear error naming the URL and the mirror option; nothing is written', async () => {
  const closed = createServer();
  await new Promise((r) => closed.listen(0, '127.0.0.1', r));
  const { port } = closed.address();
  await new Promise((r) => closed.close(r));
  const err = await assertGpt2Error(() => download('gpt2', { dir: target(), baseUrl: `http://127.0.0.1:${port}` }), 'io',
    new RegExp(`^cannot reach http://127\\.0\\.0\\.1:${port}/openai-community/gpt2/resolve/main/\\S+ \\(.*ECONNREFUSED.*\\); .*mirror.*--base-url.*GPT2_WASM_BASE_URL`));
  assert.doesNotMatch(err.message, /\n/);
  assert.equal(existsSync(target()), false, 'the folder was not created');
});

test('a server that never answers times out with the same clear error', async () => {
  hub.faults = { hang: true };
  const started = Date.now();
  await assertGpt2Error(() => download('gpt2', opts({ dir: target(), timeout: 300 })), 'io',
    /^cannot reach http:\/\/127\.0\.0\.1:\d+\/openai-community\/gpt2\/resolve\/main\/\S+ \(no answer within 0\.3 s\); .*mirror/);
  assert.ok(Date.now() - started < 5000);
  assert.equal(existsSync(target()), false);
});

test('an unknown model and a repository without model.safetensors are clear errors, from the Hub or a plain server', async () => {
  await assertGpt2Error(() => download('nobody/nothing', opts({ dir: target() })), 'io',
    /^model 'nobody\/nothing' not found \(or it is private\): http:\/\/127\.0\.0\.1:\d+\/nobody\/nothing\/resolve\/main\/\S+ answered HTTP 401/);
  await assertGpt2Error(() => download('someone/pytorch-only', opts({ dir: target() })), 'io',
    /^model 'someone\/pytorch-only' has no model\.safetensors \(only safetensors checkpoints are supported\): \S+ answered HTTP 404/);
  hub.faults = { plainErrors: true };
  await assertGpt2Error(() => download('nobody/nothing', opts({ dir: target() })), 'io',
    /^model 'nobody\/nothing' not found: http:\/\/127\.0\.0\.1:\d+\/nobody\/nothing\/resolve\/main\/config\.json answered HTTP 404 Not Found$/);
  await assertGpt2Error(() => download('someone/pytorch-only', opts({ dir: target() })), 'io',
    /^model 'someone\/pytorch-only' has no model\.safetensors .* answered HTTP 404/);
  assert.equal(existsSync(target()), false, 'nothing written');
  assert.ok(hub.log.every((r) => r.method === 'HEAD'), 'found out before any download');
});

test('a renamed repository is followed (307) and its weights still verified', async () => {
  hub.faults = { corrupt: 1 };
  await assertGpt2Error(() => download('oldname/gpt2-renamed', opts({ dir: target() })), 'io', /SHA-256/);
  const dir = await download('oldname/gpt2-renamed', opts({ dir: target() }));
  assertComplete(dir);
  assert.ok(hub.log.some((r) => r.path === '/oldname/gpt2-renamed/resolve/main/model.safetensors' && r.status === 307));
});

function mkdirp(dir) {
  mkdirSync(dir, { recursive: true });
}
