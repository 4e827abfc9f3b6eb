// `gpt2-wasm download` (js/node/cli.js on js/node/download.js) against a local stand-in for the Hugging
// Face Hub on 127.0.0.1 (tests/js/helpers/hf_server.mjs) serving the tiny-f32 fixture: the
// files arrive intact and load; the folder is printed on stdout; errors are one line with the
// right exit status; Ctrl-C keeps the partial file and the next run continues it.
// The CLI runs as a child process, asynchronously (the server lives in this process).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveHub } from '../js/helpers/hf_server.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'js', 'node', 'cli.js');
const source = join(root, 'tests', 'fixtures', 'tiny-f32');
const FILES = ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors'];

let hub;
let work;
before(async () => {
  hub = await serveHub({ 'distilbert/distilgpt2': source, 'openai-community/gpt2': source });
  work = mkdtempSync(join(tmpdir(), 'gpt2-dl-cli-'));
});
after(async () => {
  await hub.close();
  rmSync(work, { recursive: true, force: true });
});

/** Runs `node js/node/cli.js args...` without blocking this process; resolves when it exits. */
function run(args, { env = {}, onSpawn, cwd = work } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd, env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
    onSpawn?.(child);
  });
}

function assertOneLineError(r, status, pattern) {
  assert.equal(r.status, status, `exit status (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one error line, got: ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0], /^gpt2-wasm: \S/);
  assert.match(lines[0], pattern);
}

function assertSameFiles(dir) {
  assert.deepEqual(readdirSync(dir).sort(), [...FILES].sort());
  for (const f of FILES) assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(source, f))), f);
}

test('download distilgpt2 --base-url --dir fetches a folder that the tool then runs', async () => {
  hub.reset();
  const dir = join(work, 'distil');
  const r = await run(['download', 'distilgpt2', '--base-url', hub.baseUrl, '--dir', dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${dir}\n`, 'the folder on stdout');
  const total = FILES.reduce((n, f) => n + statSync(join(source, f)).size, 0);
  assert.match(r.stderr, new RegExp(`^fetched distilgpt2 into \\S+ \\(${Math.round(total / 1000)} kB\\) in [\\d.]+ s\\n$`));
  assertSameFiles(dir);
  assert.ok(hub.log.some((e) => e.path === '/distilbert/distilgpt2/resolve/main/model.safetensors'));

  // The downloaded folder gives the same logits as the fixture it came from.
  const a = await run(['logits', '--model', dir, '-q', '--prompt', 'Hello world'], { cwd: root });
  const b = await run(['logits', '--model', source, '-q', '--prompt', 'Hello world'], { cwd: root });
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.ok(a.stdout.split('\n').length > 1000);
});

test('GPT2_WASM_BASE_URL sets the server; -q prints only the folder; the default folder is ./NAME', async () => {
  hub.reset();
  const r = await run(['download', 'gpt2', '-q'], { env: { GPT2_WASM_BASE_URL: hub.baseUrl } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, `${join(work, 'gpt2')}\n`);
  assertSameFiles(join(work, 'gpt2'));
  assert.ok(hub.log.some((e) => e.path === '/openai-community/gpt2/resolve/main/config.json'));
});

test('errors are one line: exit 1 for network and HTTP failures, 2 for usage', async () => {
  const closed = createServer();
  await new Promise((r) => closed.listen(0, '127.0.0.1', r));
  const { port } = closed.address();
  await new Promise((r) => closed.close(r));
  const dir = join(work, 'none');
  assertOneLineError(await run(['download', 'gpt2', '--base-url', `http://127.0.0.1:${port}`, '--dir', dir]), 1,
    new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/openai-community/gpt2/resolve/main/\\S+ \\(.*ECONNREFUSED.*\\).*--base-url`));
  assertOneLineError(await run(['download', 'nobody/nothing', '--base-url', hub.baseUrl, '--dir', dir]), 1,
    /model 'nobody\/nothing' not found \(or it is private\): .* answered HTTP 401/);
  hub.faults = { plainErrors: true }; // a plain server's 404
  assertOneLineError(await run(['download', 'nobody/nothing', '--base-url', hub.baseUrl, '--dir', dir]), 1,
    /model 'nobody\/nothing' not found: .* answered HTTP 404/);
  hub.reset();
  assert.equal(existsSync(dir), false, 'nothing written');

  assertOneLineError(await run(['download']), 2, /download needs one model name \(gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2, or OWNER\/NAME\)/);
  assertOneLineError(await run(['download', 'gpt2', 'distilgpt2']), 2, /one model name/);
  assertOneLineError(await run(['download', 'gpt3']), 2, /unknown model 'gpt3'/);
  assertOneLineError(await run(['download', 'gpt2', '--prompt', 'x']), 2, /download does not take --prompt/);
  assertOneLineError(await run(['download', 'gpt2', '--base-url', 'ftp://example.com']), 2, /http\(s\) URL/);
  assertOneLineError(await run(['download', 'gpt2', '--dir']), 2, /--dir needs a value/);
  assertOneLineError(await run(['info', '--dir', dir]), 2, /--dir is an option of download/);
});

test('Ctrl-C keeps the .part (exit 130) and the next run continues it with Range', async () => {
  hub.reset();
  hub.faults = { chunkDelayMs: 30 };
  const dir = join(work, 'interrupted');
  const part = join(dir, 'model.safetensors.part');
  const r = await run(['download', 'distilgpt2', '--base-url', hub.baseUrl, '--dir', dir], {
    onSpawn: (child) => {
      const poll = setInterval(() => {
        if (existsSync(part) && statSync(part).size >= 64 * 1024) {
          clearInterval(poll);
          child.kill('SIGINT');
        }
      }, 5);
      child.on('close', () => clearInterval(poll));
    },
  });
  assertOneLineError(r, 130, /download interrupted; the partial file is kept, run the same command again to resume/);
  assert.equal(r.signal, null, 'exited by itself');
  assert.equal(existsSync(join(dir, 'model.safetensors')), false, 'no final file');
  const kept = statSync(part).size;
  const size = statSync(join(source, 'model.safetensors')).size;
  assert.ok(kept >= 64 * 1024 && kept < size, `${kept} bytes kept`);

  hub.reset();
  const again = await run(['download', 'distilgpt2', '--base-url', hub.baseUrl, '--dir', dir, '-q']);
  assert.equal(again.status, 0, again.stderr);
  assertSameFiles(dir);
  const gets = hub.log.filter((e) => e.method === 'GET' && e.path.startsWith('/cdn/'));
  assert.deepEqual(gets.map((e) => [e.range, e.status]), [[`bytes=${kept}-`, 206]]);
  assert.equal(hub.bytesSent, size - kept);
});
