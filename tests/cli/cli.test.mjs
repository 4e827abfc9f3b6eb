// The native CLI `gpt2` (built by tests/run.sh into build/): outputs against the float64
// reference fixtures, and one clear error line with a non-zero status for bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, cpSync, writeFileSync, truncateSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'build', 'gpt2');
const fixture = join(root, 'tests', 'fixtures', 'tiny-f32');
const expected = JSON.parse(readFileSync(join(fixture, 'expected.json'), 'utf8'));

function gpt2(args, input) {
  const r = spawnSync(cli, args, { input, timeout: 60000 });
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), raw: r.stdout };
}

function assertOneLineError(r, status, pattern) {
  assert.equal(r.status, status, `exit status (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one error line, got: ${r.stderr}`);
  assert.match(lines[0], /^gpt2: /);
  assert.match(lines[0], pattern);
}

test('logits --ids match the float64 reference within 1e-4', () => {
  for (const c of expected.cases) {
    const r = gpt2(['logits', '--model', fixture, '--ids', c.ids.join(' ')]);
    assert.equal(r.status, 0, r.stderr);
    const got = r.stdout.trim().split('\n').map(Number);
    assert.equal(got.length, c.logits_last.length);
    const worst = Math.max(...got.map((v, i) => Math.abs(v - c.logits_last[i])));
    assert.ok(worst <= 1e-4, `${c.name}: max abs error ${worst}`);
  }
});

test('tokenize gives the reference ids, detokenize gives the text back', () => {
  for (const c of expected.cases) {
    const args = ['tokenize', '--model', fixture];
    if (c.allow_special) args.push('--special');
    const r = gpt2(args, c.text);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split(' ').map(Number), c.ids, c.name);
    const d = gpt2(['detokenize', '--model', fixture, '--ids', c.ids.join(' ')]);
    assert.equal(d.stdout, c.text, c.name);
  }
});

test('greedy generate prints the prompt and the reference continuation', () => {
  const c = expected.cases.find((x) => x.name === 'english');
  const want = gpt2(['detokenize', '--model', fixture, '--ids', [...c.ids, ...c.greedy].join(' ')]).stdout;
  const r = gpt2(['generate', '--model', fixture, '--prompt', c.text, '--temperature', '0',
    '--max-tokens', String(c.greedy.length), '--ignore-eot']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, want + '\n');
});

test('score prints per-token log-probabilities matching the reference', () => {
  const c = expected.cases.find((x) => x.name === 'english');
  const r = gpt2(['score', '--model', fixture, '--ids', c.ids.join(' ')]);
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').slice(2, 1 + c.ids.length);
  assert.equal(rows.length, c.logprobs.length);
  rows.forEach((row, i) => {
    const [, id, lp, rank] = row.split('\t');
    assert.equal(Number(id), c.ids[i + 1]);
    assert.ok(Math.abs(Number(lp) - c.logprobs[i]) <= 1e-4, `token ${i + 1}: ${lp} vs ${c.logprobs[i]}`);
    assert.equal(Number(rank), c.ranks[i]);
  });
  assert.match(r.stdout, /perplexity [0-9.]+\n$/);
});

test('info describes the model', () => {
  const r = gpt2(['info', '--model', fixture]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /n_layer\s+2\n/);
  assert.match(r.stdout, /n_vocab\s+1257\n/);
});

test('usage errors exit 2 with one line', () => {
  assertOneLineError(gpt2(['frobnicate']), 2, /unknown command/);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--bogus']), 2, /unknown option '--bogus'/);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--max-tokens', 'ten']), 2, /--max-tokens/);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--prompt']), 2, /needs a value/);
});

test('bad input exits 1 with one clear line', () => {
  assertOneLineError(gpt2(['generate', '--model', '/nonexistent/model']), 1, /nonexistent/);
  const long = 'word '.repeat(200);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--prompt', long, '--truncate', 'error']), 1, /context/);
  const badUtf8 = Buffer.from([0x61, 0x62, 0xff, 0x63]);
  const r = spawnSync(cli, ['tokenize', '--model', fixture], { input: badUtf8, encoding: 'utf8' });
  assertOneLineError({ status: r.status, stderr: r.stderr }, 1, /UTF-8/);
  assertOneLineError(gpt2(['logits', '--model', fixture, '--ids', '1 2 99999']), 1, /99999/);
  assertOneLineError(gpt2(['detokenize', '--model', fixture, '--ids', '1 x 3']), 1, /whole numbers/);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--top-p', '1.5']), 1, /top_p/);
});

test('a damaged checkpoint is reported, not crashed on', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpt2-cli-'));
  try {
    cpSync(fixture, dir, { recursive: true });
    const st = join(dir, 'model.safetensors');
    truncateSync(st, statSync(st).size - 100);
    assertOneLineError(gpt2(['info', '--model', dir]), 1, /truncated|model\.safetensors/);
    writeFileSync(join(dir, 'config.json'), '{"n_layer": 2,');
    assertOneLineError(gpt2(['info', '--model', dir]), 1, /config\.json/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')), activation_function: 'relu' }));
    assertOneLineError(gpt2(['info', '--model', dir]), 1, /relu/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate --draft: greedy text as without; sampled text the same natively and in WASM for a seed', () => {
  const base = ['generate', '--model', fixture, '--prompt', 'The quick brown fox', '--max-tokens', '30', '--ignore-eot', '--threads', '1'];
  const draft = ['--draft', join(root, 'tests', 'fixtures', 'tiny-bf16'), '--draft-precision', 'f32', '--draft-tokens', '3'];
  const plain = gpt2([...base, '--temperature', '0']);
  const spec = gpt2([...base, '--temperature', '0', ...draft, '--stats']);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(spec.status, 0, spec.stderr);
  assert.equal(spec.stdout, plain.stdout);
  assert.match(spec.stderr, /draft: \d+ of \d+ proposed tokens accepted \(\d+\.\d%\)/);
  // Sampling: the seed fixes the text; the JS CLI (WebAssembly) gives the same bytes.
  const sampling = ['--temperature', '0.9', '--top-k', '40', '--top-p', '0.95', '--repetition-penalty', '1.2', '--seed', '7'];
  const a = gpt2([...base, ...sampling, ...draft]), b = gpt2([...base, ...sampling, ...draft]);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  const other = gpt2([...base, ...sampling.slice(0, -1), '8', ...draft]);
  assert.notEqual(other.stdout, a.stdout);
  const wasm = spawnSync(process.execPath, [join(root, 'js', 'node', 'cli.js'), ...base.slice(0, -2), '-q', ...sampling, ...draft], { timeout: 60000 });
  assert.equal(wasm.status, 0, wasm.stderr.toString());
  assert.equal(wasm.stdout.toString('utf8'), a.stdout);
});

test('generate --draft: bad draft options are one clear line', () => {
  assertOneLineError(gpt2(['generate', '--model', fixture, '--draft-tokens', '3', '--prompt', 'x']), 2, /need --draft/);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--draft', fixture, '--draft-tokens', '17', '--prompt', 'x']), 2, /from 1 to 16/);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--draft', fixture, '--draft-precision', 'f8', '--prompt', 'x']), 2, /draft-precision/);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--draft', join(root, 'models'), '--prompt', 'x']), 1, /draft: .*vocabulary/);
  assertOneLineError(gpt2(['generate', '--model', fixture, '--draft', '/nonexistent-draft', '--prompt', 'x']), 1, /draft: /);
  assertOneLineError(gpt2(['score', '--model', fixture, '--draft', fixture, '--prompt', 'x']), 2, /generate only/);
});
