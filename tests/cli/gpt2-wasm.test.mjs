// The Node command-line tool `gpt2-wasm` (js/node/cli.js, on the WebAssembly build in dist/):
// the same outputs as the native `gpt2` and the float64 reference fixtures, one clear error
// line with the right exit status, the embedded model, Ctrl-C, and the TypeScript declarations.
// Needs `npm run build` (dist/gpt2.mjs, dist/gpt2.wasm); compares with build/gpt2 when it exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'js', 'node', 'cli.js');
const native = join(root, 'build', 'gpt2');
const fixture = join(root, 'tests', 'fixtures', 'tiny-f32');
const expected = JSON.parse(readFileSync(join(fixture, 'expected.json'), 'utf8'));
const byName = (name) => expected.cases.find((c) => c.name === name);

if (!existsSync(join(root, 'dist', 'gpt2.wasm')) || !existsSync(join(root, 'dist', 'gpt2.mjs'))) {
  throw new Error('dist/gpt2.wasm is missing: run `npm run build` before these tests');
}

/** Runs `node js/node/cli.js args...` with stdin input; stdout as text and as bytes. */
function run(args, { input, cwd = root } = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { input, cwd, timeout: 60000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), raw: r.stdout };
}

/** Same, quiet (no "loaded ..." line on stderr), on the tiny fixture. */
function tiny(command, args = [], options) {
  return run([command, '--model', fixture, '-q', ...args], options);
}

function assertOneLineError(r, status, pattern) {
  assert.equal(r.status, status, `exit status (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '', 'nothing on stdout');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one error line, got: ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0], /^gpt2-wasm: \S/);
  assert.match(lines[0], pattern);
}

test('greedy generate prints the prompt and the reference continuation', () => {
  for (const c of expected.cases.filter((x) => x.greedy.length > 0)) {
    const args = ['--prompt', c.text, '--temperature', '0', '--max-tokens', String(c.greedy.length), '--ignore-eot'];
    if (c.allow_special) args.push('--special');
    const r = tiny('generate', args);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'quiet: nothing on stderr');
    // The text of prompt + reference tokens, decoded by the tool itself.
    const want = tiny('detokenize', ['--ids', [...c.ids, ...c.greedy].join(' ')]);
    assert.equal(want.status, 0, want.stderr);
    assert.equal(r.stdout, want.stdout + '\n', c.name);
  }
});

test('generate ends with exactly one newline, also after text that ends with one', () => {
  // --max-tokens 0: the output is the prompt alone, then the newline (a shell prompt starts on
  // its own line; the output minus its last byte is the text)
  for (const prompt of ['Hello', 'Hello\n', 'Hello\n\n', '']) {
    const r = tiny('generate', ['--prompt', prompt, '--max-tokens', '0']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${prompt}\n`, JSON.stringify(prompt));
  }
});

test('greedy generate equals the native gpt2 byte for byte', (t) => {
  if (!existsSync(native)) {
    t.skip('build/gpt2 not built (cmake -S . -B build && cmake --build build)');
    return;
  }
  for (const c of expected.cases.filter((x) => x.greedy.length > 0)) {
    for (const n of [c.greedy.length, 40]) {
      const args = ['--prompt', c.text, '--temperature', '0', '--max-tokens', String(n), '--ignore-eot'];
      if (c.allow_special) args.push('--special');
      const want = spawnSync(native, ['generate', '--model', fixture, ...args], { timeout: 60000 });
      assert.equal(want.status, 0, want.stderr.toString());
      const r = tiny('generate', args);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.raw, want.stdout, `${c.name}, ${n} tokens: ${JSON.stringify(r.stdout)} vs ${JSON.stringify(want.stdout.toString())}`);
    }
  }
  // Sampling with every option, and a stop sequence: the same code, the same seed, the same text.
  const sampled = ['--prompt', 'It was a bright cold day', '--max-tokens', '30', '--temperature', '0.9', '--top-k', '50',
    '--top-p', '0.9', '--repetition-penalty', '1.3', '--seed', '7', '--ignore-eot'];
  const want = spawnSync(native, ['generate', '--model', fixture, ...sampled], { timeout: 60000 });
  const r = tiny('generate', sampled);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.raw, want.stdout);
  // Stop before a word from the middle of that text: both tools cut at the same place.
  const generated = r.stdout.slice('It was a bright cold day'.length);
  const stopAt = generated.slice(10).match(/[a-z]{3}/)?.[0];
  assert.ok(stopAt, `a word to stop at in ${JSON.stringify(generated)}`);
  const withStop = [...sampled, '--stop', 'not in the text', '--stop', stopAt];
  const ws = spawnSync(native, ['generate', '--model', fixture, ...withStop], { timeout: 60000 });
  const rs = tiny('generate', withStop);
  assert.equal(rs.status, 0, rs.stderr);
  assert.deepEqual(rs.raw, ws.stdout, `stop ${JSON.stringify(stopAt)}`);
  assert.ok(rs.stdout.length < r.stdout.length && !rs.stdout.slice(20).includes(stopAt));
});

test('a bare prompt argument generates (positional prompt = generate)', () => {
  const c = byName('english');
  const a = run(['--model', fixture, '-q', '--temperature', '0', '--max-tokens', '5', c.text]);
  const b = tiny('generate', ['--prompt', c.text, '--temperature', '0', '--max-tokens', '5']);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.ok(a.stdout.startsWith(c.text));
  // Several words are joined with spaces; `--opt=value` works too.
  const w = run(['--model=' + fixture, '-q', '--temperature=0', '--max-tokens=5', ...c.text.split(' ')]);
  assert.equal(w.stdout, b.stdout);
});

test('tokenize gives the reference ids (--prompt, stdin), detokenize gives the text back', () => {
  for (const c of expected.cases) {
    const special = c.allow_special ? ['--special'] : [];
    const p = tiny('tokenize', ['--prompt', c.text, ...special]);
    assert.equal(p.status, 0, p.stderr);
    assert.deepEqual(p.stdout.trimEnd().split(' ').map(Number), c.ids, c.name);
    assert.match(p.stdout, /^[0-9 ]+\n$/);
    const s = tiny('tokenize', special, { input: c.text });
    assert.equal(s.stdout, p.stdout, `${c.name} (stdin)`);
    const d = tiny('detokenize', ['--ids', c.ids.join(' ')]);
    assert.equal(d.status, 0, d.stderr);
    assert.equal(d.stdout, c.text, c.name);
    assert.equal(tiny('detokenize', [], { input: c.ids.join('\n') }).stdout, c.text, `${c.name} (stdin)`);
  }
  assert.equal(tiny('detokenize', ['464', '627', '624']).stdout, 'The quick');
  // Without --special, <|endoftext|> is ordinary text.
  const plain = tiny('tokenize', ['--prompt', '<|endoftext|>']).stdout.trim().split(' ').map(Number);
  assert.ok(plain.length > 1 && !plain.includes(expected.eot_id));
});

test('score prints one parsable line per token and the perplexity', () => {
  for (const name of ['english', 'digits_punct_newlines']) {
    const c = byName(name);
    const r = tiny('score', ['--ids', c.ids.join(' ')]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines.pop(), '', 'ends with a newline');
    assert.equal(lines[0], 'index\tid\tlogprob\trank\ttoken');
    const rows = lines.slice(1, 1 + c.ids.length).map((l) => l.split('\t'));
    assert.equal(rows.length, c.ids.length);
    assert.deepEqual(rows[0].slice(0, 4), ['0', String(c.ids[0]), '', ''], 'the first token has no logprob or rank');
    let total = 0;
    rows.forEach((row, i) => {
      assert.equal(row.length, 5, `5 tab-separated fields: ${JSON.stringify(row)}`);
      assert.equal(Number(row[0]), i);
      assert.equal(Number(row[1]), c.ids[i]);
      assert.doesNotMatch(row[4], /[\n\r\t]/, 'token text is escaped');
      if (i === 0) return;
      assert.ok(Math.abs(Number(row[2]) - c.logprobs[i - 1]) <= 1e-4, `${name} token ${i}: ${row[2]} vs ${c.logprobs[i - 1]}`);
      assert.equal(Number(row[3]), c.ranks[i - 1]);
      total += c.logprobs[i - 1];
    });
    const m = lines[lines.length - 1].match(/^tokens (\d+), total logprob (-?[0-9.]+), perplexity ([0-9.]+)$/);
    assert.ok(m, `summary line: ${lines[lines.length - 1]}`);
    assert.equal(Number(m[1]), c.ids.length);
    assert.ok(Math.abs(Number(m[2]) - total) < 1e-3);
    const ppl = Math.exp(-total / (c.ids.length - 1));
    assert.ok(Math.abs(Number(m[3]) - ppl) / ppl < 1e-4, `perplexity ${m[3]} vs ${ppl}`);
    assert.equal(lines.length, c.ids.length + 2);
  }
  // Text from --prompt: newlines and tabs in tokens are escaped as \n and \t.
  const r = tiny('score', ['--prompt', 'a\tb\nc']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\\n/);
  assert.match(r.stdout, /\\t/);
});

test('logits match the float64 reference within 1e-4', () => {
  const c = byName('english');
  const r = tiny('logits', ['--ids', c.ids.join(' ')]);
  assert.equal(r.status, 0, r.stderr);
  const got = r.stdout.trim().split('\n').map(Number);
  assert.equal(got.length, c.logits_last.length);
  const worst = Math.max(...got.map((v, i) => Math.abs(v - c.logits_last[i])));
  assert.ok(worst <= 1e-4, `max abs error ${worst}`);
});

test('info describes the model', () => {
  const r = tiny('info');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^model\s+\S*tiny-f32\/\n/);
  assert.match(r.stdout, /\nn_layer\s+2\n/);
  assert.match(r.stdout, /\nn_ctx\s+64\n/);
  assert.match(r.stdout, /\nn_vocab\s+1257\n/);
  assert.match(r.stdout, new RegExp(`<\\|endoftext\\|> = ${expected.eot_id}\\n`));
});

test('the embedded model is the default, and loading ends with one "loaded" line off a terminal', () => {
  const r = run(['Once upon a time', '--max-tokens', '8', '--temperature', '0']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.startsWith('Once upon a time') && r.stdout.endsWith('\n'));
  assert.ok(r.stdout.length > 'Once upon a time\n'.length, 'some text was generated');
  // stderr is a pipe here: no progress bar (no \r or escapes), just the summary line.
  assert.match(r.stderr, /^loaded models\/ \([0-9.]+ [kMG]?B\) in [0-9.:]+ s?\n$/);
  const i = run(['info', '-q']);
  assert.match(i.stdout, /\nn_vocab\s+50257\n/);
  // The same greedy text as the native tool on the same folder.
  if (existsSync(native)) {
    const n = spawnSync(native, ['generate', '--model', join(root, 'models'), '--prompt', 'Once upon a time',
      '--max-tokens', '8', '--temperature', '0'], { timeout: 60000 });
    assert.equal(r.stdout, n.stdout.toString());
  }
});

test('--stats prints the timings on stderr', () => {
  const r = tiny('generate', ['--prompt', 'The quick', '--max-tokens', '6', '--temperature', '0', '--ignore-eot', '--stats']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^prompt \d+ tokens, generated 6 tokens, stop: max_tokens, first token [0-9.]+ s, ([0-9.]+|n\/a) tokens\/s after it\n$/);
  const s = tiny('generate', ['--prompt', 'The quick', '--max-tokens', '0', '--stats']);
  assert.match(s.stderr, /generated 0 tokens, stop: max_tokens, .* n\/a tokens\/s/);
});

test('help, version, and usage errors exit 2 with one line', () => {
  const h = run(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /^usage: gpt2-wasm /);
  for (const opt of ['--model', '--prompt', '--ids', '--special', '--max-tokens', '--temperature', '--top-k', '--top-p',
    '--repetition-penalty', '--seed', '--stop', '--ignore-eot', '--stats']) {
    assert.ok(h.stdout.includes(opt), `--help mentions ${opt}`);
  }
  assert.equal(run(['score', '-h']).stdout, h.stdout);
  assert.match(run(['--version']).stdout, /^gpt2-wasm \d+\.\d+\.\d+\n$/);
  const none = run([]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^usage: /);
  assertOneLineError(tiny('generate', ['--bogus']), 2, /unknown option '--bogus' \(see gpt2-wasm --help\)$/);
  assertOneLineError(tiny('generate', ['--tempeature', '2']), 2, /unknown option '--tempeature' \(did you mean '--temperature'\?\)/);
  assertOneLineError(tiny('generate', ['--max-tokens', 'ten']), 2, /--max-tokens needs a whole number/);
  assertOneLineError(tiny('generate', ['--max-tokens', '-3']), 2, /--max-tokens/);
  assertOneLineError(tiny('generate', ['--temperature', 'hot']), 2, /--temperature needs a number/);
  assertOneLineError(tiny('generate', ['--seed', '1.5']), 2, /--seed/);
  assertOneLineError(tiny('generate', ['--prompt']), 2, /needs a value/);
  assertOneLineError(tiny('generate', ['--ignore-eot=yes']), 2, /takes no value/);
  assertOneLineError(tiny('generate', Array(9).fill(['--stop', 'x']).flat()), 2, /at most 8/);
  assertOneLineError(tiny('generate', ['--prompt', 'a', 'b']), 2, /either with --prompt or as arguments/);
  assertOneLineError(tiny('logits'), 2, /needs --ids or --prompt/);
});

test('bad input exits 1 with one clear line', () => {
  // Missing model folder (not quiet: nothing else is printed when loading fails).
  assertOneLineError(run(['generate', '--model', '/nonexistent/model', '--prompt', 'x']), 1, /\/nonexistent\/model\/config\.json/);
  // Prompt longer than the context.
  const long = 'word '.repeat(200);
  assertOneLineError(tiny('generate', ['--prompt', long, '--truncate', 'error']), 1, /context/);
  assertOneLineError(tiny('score', ['--prompt', long]), 1, /context/);
  // Option values the core rejects.
  assertOneLineError(tiny('generate', ['--top-p', '1.5']), 1, /topP/);
  assertOneLineError(tiny('generate', ['--temperature', '-1']), 1, /temperature/);
  // Ids.
  assertOneLineError(tiny('detokenize', ['--ids', '1 x 3']), 1, /whole numbers/);
  assertOneLineError(tiny('logits', ['--ids', '1 2 99999']), 1, /99999/);
  assertOneLineError(tiny('score', ['--prompt', '']), 1, /no tokens/);
  // Text on stdin that is not UTF-8.
  assertOneLineError(tiny('tokenize', [], { input: Buffer.from([0x61, 0x62, 0xff, 0x63]) }), 1, /UTF-8/);
  // Without -q, a failure after loading prints the "loaded" line, then the one error line.
  const r = run(['generate', '--model', fixture, '--prompt', long, '--truncate', 'error']);
  assert.equal(r.status, 1);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0], /^loaded \S*tiny-f32\/ /);
  assert.match(lines[1], /^gpt2-wasm: .*context/);
});

test('a closed stdout ends the program quietly', () => {
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${cli}" --model "${fixture}" -q --max-tokens 60 --ignore-eot "The quick" | head -c 5`],
    { timeout: 60000 });
  assert.equal(r.stdout.toString(), 'The q');
  assert.equal(r.stderr.toString(), '');
});

test('Ctrl-C during generation stops cleanly with a newline (exit 130)', async (t) => {
  // The embedded model has the longest context (128 tokens); SIGINT goes out as soon as the
  // first generated text arrives, so the generation is cancelled after a few tokens.
  const prompt = 'Once upon a time';
  const child = spawn(process.execPath, [cli, '-q', '--stats', '--max-tokens', '1000', '--ignore-eot', prompt], { cwd: root });
  let stdout = '', stderr = '', sent = false;
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    stdout += d;
    if (!sent && stdout.length > prompt.length) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  child.stderr.on('data', (d) => { stderr += d; });
  const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])));
  if (code === 0 && /stop: (context_full|max_tokens)/.test(stderr)) {
    t.skip('the generation finished before SIGINT arrived (a very slow machine?)');
    return;
  }
  assert.equal(signal, null, 'exited by itself, not killed by the signal');
  assert.equal(code, 130, stderr);
  assert.ok(stdout.startsWith(prompt) && stdout.endsWith('\n'), JSON.stringify(stdout));
  assert.match(stderr, /^prompt \d+ tokens, generated \d+ tokens, stop: cancelled, /);
  const generated = Number(stderr.match(/generated (\d+) tokens/)[1]);
  assert.ok(generated < 100, `stopped early (${generated} tokens)`);
});

test('the TypeScript example type-checks against js/index.d.ts (tsc --noEmit -p tests/types)', (t) => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) {
    t.skip('typescript is not installed in node_modules (npm install --save-dev --save-exact typescript@5)');
    return;
  }
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', join(root, 'tests', 'types')], { cwd: root, timeout: 120000 });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
