// Where the JS API finds its files in Node: the package's dist/ and models/, a copy named by
// the `assetsUrl` option, a build folder named by GPT2_WASM_DIST, `wasmUrl`; and the errors
// when dist/ is missing (an installed package: reinstall; a checkout: npm run build).
// Copies of the package's files are made in a temporary folder and imported from there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { root } from './helpers/common.mjs';

const PROMPT = 'It is a truth universally acknowledged';
const GREEDY = { maxTokens: 8, temperature: 0 };

let dir;
let expected; // the greedy text with this checkout's files

async function greedy(model) {
  let text = '';
  for await (const piece of model.generate(PROMPT, GREEDY)) text += piece.text;
  return text;
}

/** Copies the package's files (without dist/ unless withDist) to `to`. */
function copyPackage(to, { withDist }) {
  mkdirSync(to, { recursive: true });
  for (const f of ['package.json', 'js', 'models', ...(withDist ? ['dist'] : [])]) cpSync(join(root, f), join(to, f), { recursive: true });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gpt2-assets-'));
  const { load } = await import('../../js/index.js');
  const model = await load(undefined, { threads: 1 });
  expected = await greedy(model);
  model.dispose();
  assert.ok(expected.length > 0);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('an installed package without dist/: the error says to reinstall it', async () => {
  const pkg = join(dir, 'app', 'node_modules', 'gpt2-wasm');
  copyPackage(pkg, { withDist: false });
  const { load } = await import(pathToFileURL(join(pkg, 'js', 'index.js')).href);
  await assert.rejects(load(), (e) => {
    assert.equal(e.code, 'io');
    assert.match(e.message, /node_modules\/gpt2-wasm\/dist\/gpt2\.mjs \(this copy of gpt2-wasm has no dist\/: reinstall the package\)/);
    return true;
  });
});

test('a checkout without dist/: the error says to run npm run build', async () => {
  const pkg = join(dir, 'checkout');
  copyPackage(pkg, { withDist: false });
  const { load } = await import(pathToFileURL(join(pkg, 'js', 'index.js')).href);
  await assert.rejects(load(), /checkout\/dist\/gpt2\.mjs \(run `npm run build` first\)/);
});

test('assetsUrl: dist/ and the embedded model come from that folder', async () => {
  const bare = join(dir, 'bare');        // no dist/: everything must come from assetsUrl
  copyPackage(bare, { withDist: false });
  const assets = join(dir, 'assets');
  copyPackage(assets, { withDist: true });
  const { load } = await import(pathToFileURL(join(bare, 'js', 'index.js')).href);
  for (const threads of [1, 2]) {
    const model = await load(null, { assetsUrl: pathToFileURL(assets + '/'), threads });
    try {
      assert.equal(model.info.source, join(assets, 'models') + '/');
      assert.equal(model.info.threads, threads);
      assert.equal(await greedy(model), expected);
    } finally {
      model.dispose();
    }
  }
  await assert.rejects(load(null, { assetsUrl: 'not a url' }), (e) => e.code === 'arg' && /assetsUrl must be a URL/.test(e.message));
});

test('GPT2_WASM_DIST names another build folder; wasmUrl another .wasm', () => {
  const build = join(dir, 'other-dist');
  cpSync(join(root, 'dist'), build, { recursive: true });
  const script = `
    const { load } = await import(${JSON.stringify(pathToFileURL(join(root, 'js', 'index.js')).href)});
    const m = await load(undefined, { wasmUrl: 'gpt2.wasm' });
    let t = ''; for await (const p of m.generate(${JSON.stringify(PROMPT)}, ${JSON.stringify(GREEDY)})) t += p.text;
    m.dispose();
    console.log(JSON.stringify(t));
    await load(undefined, { wasmUrl: 'missing.wasm' }).catch((e) => console.log(e.code, e.message));`;
  const ok = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, GPT2_WASM_DIST: build }, encoding: 'utf8', timeout: 60000 });
  assert.equal(ok.status, 0, ok.stderr);
  const [text, failure] = ok.stdout.trim().split('\n');
  assert.equal(JSON.parse(text), expected);
  assert.match(failure, new RegExp(`^io .*${build}/missing\\.wasm`));
  const missing = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, GPT2_WASM_DIST: join(dir, 'nowhere') }, encoding: 'utf8', timeout: 60000 });
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /nowhere\/gpt2\.mjs \(GPT2_WASM_DIST=.*nowhere: build into it with/);
});
