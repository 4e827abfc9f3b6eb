// scripts/setup.sh, which `npm start`, `npm run build` and `npm test` run first: on a machine
// without Emscripten it installs it (root with apt-get) or prints the one command to run.
// The machines are simulated with a PATH of symlinks to this machine's programs minus the
// ones that make a difference (emcc/emcmake, cmake, apt-get), and a stand-in apt-get that
// records how it was called; nothing is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const isRoot = process.getuid?.() === 0;

const work = mkdtempSync(join(tmpdir(), 'gpt2-setup-'));
test.after(() => rmSync(work, { recursive: true, force: true }));
// A copy of the script in a folder anyone can read (the unprivileged run below cannot enter
// every checkout's folder).
chmodSync(work, 0o755);
mkdirSync(join(work, 'repo', 'scripts'), { recursive: true });
cpSync(join(root, 'scripts', 'setup.sh'), join(work, 'repo', 'scripts', 'setup.sh'));

/** A folder of symlinks to every program in the system folders except `hide`; plus `extra`. */
function fakeBin(name, hide, extra = {}) {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const sys of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    let entries = [];
    try { entries = readdirSync(sys); } catch { continue; }
    for (const e of entries) {
      if (hide.some((h) => (h.endsWith('*') ? e.startsWith(h.slice(0, -1)) : e === h))) continue;
      try { symlinkSync(join(sys, e), join(dir, e)); } catch { /* the first folder wins */ }
    }
  }
  for (const [file, text] of Object.entries(extra)) writeFileSync(join(dir, file), text, { mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

function setup(mode, path, { env = {}, asNobody = false } = {}) {
  const script = join(work, 'repo', 'scripts', 'setup.sh');
  const [cmd, args] = asNobody
    ? ['/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/bin/bash', script, mode]]
    : ['/bin/bash', [script, mode]];
  const r = spawnSync(cmd, args, { env: { PATH: path, HOME: work, ...env }, encoding: 'utf8', timeout: 30000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

const noEmscripten = fakeBin('no-emscripten', ['em*', 'cmake']);

test('without Emscripten and cmake, as a user: prints the one sudo apt-get line and stops', () => {
  const r = isRoot ? setup('start', noEmscripten, { asNobody: true }) : setup('start', noEmscripten);
  assert.equal(r.status, 1, r.stderr);
  assert.deepEqual(r.stderr.trimEnd().split('\n'), [
    'the WebAssembly build (npm start, npm run build) needs system packages this machine lacks; install them with:',
    '  sudo apt-get install -y emscripten cmake',
  ]);
  assert.equal(r.stdout, '');
});

test('root with GPT2_NO_INSTALL=1 gets the same line and nothing is installed', { skip: !isRoot && 'not root' }, () => {
  const r = setup('start', noEmscripten, { env: { GPT2_NO_INSTALL: '1' } });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^ {2}sudo apt-get install -y emscripten cmake$/m);
});

test('as root: runs apt-get update and apt-get install -y with the missing packages', { skip: !isRoot && 'not root' }, () => {
  const log = join(work, 'apt-calls.txt');
  // the stand-in apt-get records its arguments and installs nothing
  const dir = fakeBin('fake-apt', ['em*', 'cmake', 'apt-get'], {
    'apt-get': `#!/bin/sh\necho "$*" >> '${log}'\n`,
  });
  const r = setup('start', dir);
  assert.deepEqual(readFileSync(log, 'utf8').trimEnd().split('\n'), ['update -q', 'install -y -q emscripten cmake']);
  // nothing was really installed: the script checks again and says so
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^setup: installing emscripten cmake \(apt-get\)$/m);
  assert.match(r.stderr, /^setup: apt-get installed emscripten cmake, but these are still missing: emscripten cmake /m);
});

test('test mode also asks for the test tools (here: clang)', () => {
  const dir = fakeBin('no-clang', ['em*', 'clang*']);
  const r = setup('test', dir, { env: { GPT2_NO_INSTALL: '1' } });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^npm test needs system packages this machine lacks; install them with:$/m);
  assert.match(r.stderr, /^ {2}sudo apt-get install -y emscripten clang$/m);
});

test('without apt-get: names the packages for another package manager', () => {
  const dir = fakeBin('no-apt', ['em*', 'cmake', 'apt-get']);
  const r = setup('start', dir);
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim(),
    'the WebAssembly build (npm start, npm run build) needs: emscripten cmake (Debian package names; install them with your system\'s package manager)');
});

test('on this machine (set up by npm test itself) it is silent and succeeds', () => {
  const r = setup('start', process.env.PATH);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const u = setup('oops', process.env.PATH);
  assert.equal(u.status, 2);
  assert.match(u.stderr, /usage: scripts\/setup.sh start\|native\|test/);
});
