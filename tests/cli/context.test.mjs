// Long contexts in both command-line tools (issue 6): generation past the context slides
// (identically in the native and the WebAssembly builds), a too-long prompt is truncated with
// a warning or rejected on request, and --context stop ends at context_full. The first
// tokens after a truncation are checked against the float64 reference (expected.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixture = join(root, 'tests', 'fixtures', 'tiny-f32');
const expected = JSON.parse(readFileSync(join(fixture, 'expected.json'), 'utf8'));
const c4 = expected.cases.find((c) => c.name === 'ctx_minus_4'); // 60 of the 64 positions
const tools = {
  native: [join(root, 'build', 'gpt2')],
  wasm: [process.execPath, join(root, 'js', 'node', 'cli.js')],
};

function run(tool, args) {
  const [cmd, ...pre] = tools[tool];
  const r = spawnSync(cmd, [...pre, ...args], { timeout: 60000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

const haveNative = existsSync(tools.native[0]);

test('sampling past the context: native and WASM print the same text', { skip: !haveNative && 'build/gpt2 missing' }, () => {
  const args = ['generate', '--model', fixture, '--prompt', 'It is a truth universally acknowledged',
    '--max-tokens', '150', '--temperature', '0.9', '--seed', '3', '--ignore-eot', '--stats'];
  const a = run('native', args);
  const b = run('wasm', [...args, '-q']);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  assert.equal(a.stdout, b.stdout);
  for (const r of [a, b]) assert.match(r.stderr, /generated 150 tokens, stop: max_tokens/);
});

test('wasm: a prompt longer than the context is truncated with a warning, or rejected', () => {
  const ids = [...Array(10).fill(c4.ids[0]), ...c4.ids].join(',');
  const base = ['generate', '--model', fixture, '--ids', ids, '--max-tokens', '4', '--temperature', '0', '--ignore-eot', '-q'];
  const r = run('wasm', base);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: the prompt was longer than the context: its first 10 tokens were dropped/);
  // The continuation of the 60 kept tokens is the reference's.
  const cont = run('wasm', ['detokenize', '--model', fixture, '--ids', c4.greedy.join(','), '-q']);
  assert.ok(r.stdout.endsWith(cont.stdout.replace(/\n$/, '') + '\n'), JSON.stringify([r.stdout.slice(-40), cont.stdout]));
  const e = run('wasm', [...base, '--truncate', 'error']);
  assert.equal(e.status, 1);
  assert.match(e.stderr, /context/);
});

for (const tool of ['native', 'wasm']) {
  test(`${tool}: long prompt warning, --truncate error, --context stop, bad values`, { skip: tool === 'native' && !haveNative && 'build/gpt2 missing' }, () => {
    const q = tool === 'wasm' ? ['-q'] : [];
    const long = 'It is a truth universally acknowledged. '.repeat(12);
    const base = ['generate', '--model', fixture, '--prompt', long, '--max-tokens', '4', '--temperature', '0', '--ignore-eot', ...q];
    const r = run(tool, base);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: the prompt was longer than the context: its first \d+ tokens were dropped/);
    const e = run(tool, [...base, '--truncate', 'error']);
    assert.equal(e.status, 1);
    assert.match(e.stderr, /context/);
    const s = run(tool, ['generate', '--model', fixture, '--prompt', 'It is a truth', '--max-tokens', '100', '--temperature', '0',
      '--ignore-eot', '--context', 'stop', '--stats', ...q]);
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stderr, /stop: context_full/);
    assert.equal(run(tool, [...base, '--context', 'wrap']).status, 2);
    assert.equal(run(tool, [...base, '--truncate', 'middle']).status, 2);
  });
}
