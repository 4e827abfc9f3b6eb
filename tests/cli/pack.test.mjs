// The npm package as a user gets it: `npm pack` (its prepack script builds dist/ when needed)
// -> the tarball's contents -> `npm install <tarball>` into a new project whose PATH has only
// node and npm (no Emscripten, no compiler) -> the README's Node examples and the gpt2-wasm
// command run there on the embedded model -> tsc type-checks a file importing the package's
// entries (moduleResolution node16 and bundler).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const browserTypes = join(root, 'js', 'browser', 'index.d.ts');

let work; // temporary folder: the tarball, bin/ (the PATH) and the project
let tarball;
let files; // paths in the tarball, without the leading "package/"
let project;
let env; // the user's environment: PATH with node and npm only

/** Runs a command; throws with its output unless it exits 0 (or returns the result when check is false). */
function run(cmd, args, { cwd, env: e = process.env, check = true, timeout = 120000 } = {}) {
  const r = spawnSync(cmd, args, { cwd, env: e, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (check && r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

/** Where a command is on the test's own PATH. */
function which(name) {
  return run('/bin/sh', ['-c', `command -v ${name}`]).stdout.trim();
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'gpt2-pack-'));
  // npm pack runs "prepack" (scripts/build-wasm.sh --target gpt2_wasm: nothing to do when
  // dist/ is up to date). npm writes the tarball's name on stdout.
  const r = run('npm', ['pack', '--pack-destination', work, '--json', '--silent'], { cwd: root, timeout: 600000 });
  const [info] = JSON.parse(r.stdout);
  tarball = join(work, info.filename);
  files = run('tar', ['-tzf', tarball]).stdout.split('\n').filter(Boolean).map((p) => p.replace(/^package\//, ''));

  // A PATH with only node and npm: what a machine without Emscripten or a compiler has.
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync(which('npm'), join(bin, 'npm'));
  env = { PATH: bin, HOME: process.env.HOME, TMPDIR: tmpdir(), LANG: 'C.UTF-8' };

  project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  run('npm', ['install', tarball, '--offline', '--no-audit', '--no-fund', '--ignore-scripts=false'], { cwd: project, env });
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the user environment has no Emscripten or compiler on PATH', () => {
  for (const tool of ['emcc', 'emcmake', 'cmake', 'cc', 'gcc']) {
    const r = run('/bin/sh', ['-c', `command -v ${tool}`], { env, check: false });
    assert.notEqual(r.status, 0, `${tool} is on the test PATH: ${r.stdout}`);
  }
});

test('the tarball holds the prebuilt modules, the model, the types and the linked docs, and nothing else', () => {
  for (const f of [
    'package.json', 'README.md', 'LICENSE', 'BENCHMARKS.md', 'js/index.js', 'js/index.d.ts', 'js/browser/index.js', 'js/browser/worker.js', 'js/node/cli.js',
    'dist/gpt2.mjs', 'dist/gpt2.wasm', 'dist/gpt2-mt.mjs', 'dist/gpt2-mt.wasm', 'dist/gpt2-mt.worker.js', 'dist/package.json',
    'models/config.json', 'models/vocab.json', 'models/merges.txt', 'models/model.safetensors', 'models/README.md',
  ]) {
    assert.ok(files.includes(f), `${f} is in the tarball`);
  }
  const bad = files.filter((f) => /^(tests|src|wasm|web|scripts|\.ci|build[^/]*|dist-[^/]*|test-output|node_modules)\//.test(f));
  assert.deepEqual(bad, [], 'no tests, sources, build folders or dependencies');
  // every relative link of every shipped Markdown file points at a shipped file
  for (const md of files.filter((f) => f.endsWith('.md'))) {
    const text = run('tar', ['-xzOf', tarball, `package/${md}`]).stdout;
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:|^#/.test(target)) continue;
      const path = posix.normalize(posix.join(posix.dirname(md), target.split('#')[0]));
      assert.ok(files.includes(path), `${md} links ${target}: ${path} is not in the tarball`);
    }
  }
  const pkg = JSON.parse(run('tar', ['-xzOf', tarball, 'package/package.json']).stdout);
  assert.equal(pkg.private, undefined, 'publishable (no "private")');
  assert.match(pkg.repository.url, /github\.com/);
});

/** The js blocks the README marks as Node examples (<!-- node-example ... --> before the fence). */
function readmeExamples() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/<!-- node-example[^>]*-->\n```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 2, 'the README marks its Node examples');
  for (const b of blocks) assert.match(b, /from 'gpt2-wasm'/);
  return blocks;
}

/** Output with the timings (which vary from run to run) blanked. */
const withoutTimings = (s) => s.replace(/(firstTokenMs|totalMs|tokensPerSecond): [0-9.e+-]+/g, '$1: #');

test("the README's Node examples run from the installed package and give the checkout's output", () => {
  readmeExamples().forEach((code, i) => {
    const file = join(project, `example-${i}.mjs`);
    writeFileSync(file, code);
    const installed = run('node', [file], { cwd: project, env });
    assert.ok(installed.stdout.length > 100, `example ${i} printed text: ${JSON.stringify(installed.stdout)}`);
    // The same code on this checkout's js/index.js (not the installed copy).
    const local = join(work, `example-${i}-checkout.mjs`);
    writeFileSync(local, code.replaceAll("from 'gpt2-wasm'", `from '${pathToFileURL(join(root, 'js', 'index.js')).href}'`));
    const { GPT2_WASM_DIST: _, ...checkoutEnv } = process.env;
    const checkout = run(process.execPath, [local], { cwd: work, env: checkoutEnv });
    assert.equal(withoutTimings(installed.stdout), withoutTimings(checkout.stdout), `example ${i}`);
  });
  // The first example streams the generated text, then prints the summary.
  const first = run('node', [join(project, 'example-0.mjs')], { cwd: project, env }).stdout;
  const summaryAt = first.indexOf("{\n  tokens: 40,");
  assert.ok(summaryAt > 40, `streamed text before the summary: ${JSON.stringify(first.slice(0, 200))}`);
  assert.match(first, /stopReason: 'max_tokens'/);
});

test('the installed gpt2-wasm command streams text from the embedded model, ending with a newline', () => {
  const r = run(join(project, 'node_modules', '.bin', 'gpt2-wasm'), ['Once upon a time', '--max-tokens', '12', '-q'],
    { cwd: project, env });
  assert.ok(r.stdout.startsWith('Once upon a time') && r.stdout.endsWith('\n'), JSON.stringify(r.stdout));
  assert.ok(r.stdout.length > 'Once upon a time\n'.length + 12, 'twelve tokens of text');
});

test('a misspelled option in the installed package is an error naming the right one', () => {
  const file = join(project, 'misspelled.mjs');
  writeFileSync(file, `import { load } from 'gpt2-wasm';
const model = await load();
try { model.generate('Hello', { maxtokens: 3 }); } catch (e) { console.log(e.code, e.message); }
model.dispose();
`);
  assert.equal(run('node', [file], { cwd: project, env }).stdout, "arg unknown option 'maxtokens' (did you mean 'maxTokens'?)\n");
});

const NODE_TS = `import { load, Gpt2Error, type GenerateOptions, type Piece } from 'gpt2-wasm';
const model = await load(undefined, { precision: 'f32', threads: 1 });
const options: GenerateOptions = { maxTokens: 5, temperature: 0 };
let text: string = '';
for await (const piece of model.generate('Hello', options)) text += (piece satisfies Piece).text;
const e: Gpt2Error = new Gpt2Error(text, 'arg');
// @ts-expect-error: a misspelled option is a type error too
model.generate('Hello', { maxtokens: 3 });
model.dispose();
export { e };
`;

const BROWSER_TS = `import { loadInWorker, clearModelCache } from 'gpt2-wasm/browser';
const model = await loadInWorker(undefined, {
  workerUrl: 'https://cdn.example/gpt2-wasm/js/browser/worker.js',
  onProgress: (p) => { const n: number = p.loaded; void n; },
});
for await (const piece of model.generate('Hello', { maxTokens: 5 })) { const t: string = piece.text; void t; }
await model.dispose();
await clearModelCache();
// @ts-expect-error: a misspelled option is a type error too
await loadInWorker(undefined, { workerURL: 'worker.js' });
`;

/** Type-checks the files with tsc in the project, for both module resolutions. */
function typeCheck(name, sources) {
  for (const [module, moduleResolution] of [['node16', 'node16'], ['esnext', 'bundler']]) {
    const dir = join(project, `${name}-${moduleResolution}`);
    mkdirSync(dir, { recursive: true });
    for (const [file, text] of Object.entries(sources)) writeFileSync(join(dir, file), text);
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'ES2022', module, moduleResolution,
        lib: ['ES2022', 'DOM', 'DOM.Iterable'], types: [], skipLibCheck: false,
      },
      files: Object.keys(sources),
    }));
    const r = run('node', [tsc, '-p', dir], { cwd: project, env, check: false });
    assert.equal(r.status, 0, `tsc (${moduleResolution}) on ${name}:\n${r.stdout}${r.stderr}`);
  }
}

test('tsc type-checks a file using the main entry, from the installed package', () => {
  typeCheck('node-entry', { 'main.ts': NODE_TS });
});

test('tsc type-checks a file using the browser entry, from the installed package', (t) => {
  if (!existsSync(browserTypes)) {
    t.skip('js/browser/index.d.ts is missing: the browser entry has no types yet (issue 12, part 3)');
    return;
  }
  typeCheck('browser-entry', { 'main.ts': NODE_TS, 'browser.ts': BROWSER_TS });
});
