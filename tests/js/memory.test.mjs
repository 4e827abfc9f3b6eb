// Memory: loading and disposing the tiny model 30 times in one process must not keep the
// WebAssembly instances alive (each load makes its own instance with its own memory).
// Runs in a child `node --expose-gc` so the measurements after gc() are meaningful; a
// control run that keeps every model shows the measurement does see leaked instances.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fixture, root } from './helpers/common.mjs';

const script = join(root, 'tests', 'js', 'helpers', 'load_dispose_loop.mjs');

function run(mode, threads = '1') {
  const r = spawnSync(process.execPath, ['--expose-gc', script, fixture('tiny-f32'), '30', mode, threads], { timeout: 50000 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, r.stderr.toString());
  assert.equal(r.stderr.toString(), '', 'no warnings (e.g. MaxListenersExceededWarning)');
  const out = JSON.parse(r.stdout.toString().trim().split('\n').pop());
  assert.equal(out.gc, true);
  assert.equal(out.rss.length, 30);
  return out;
}

test('load + dispose 30 times: memory stays flat (instances are released)', () => {
  const { rss, heap, listeners } = run('dispose');
  const rssGrowth = Math.max(...rss) - rss[0];
  const heapGrowth = heap[heap.length - 1] - heap[0];
  assert.ok(rssGrowth < 50, `RSS grew by ${rssGrowth} MB: ${rss.join(' ')}`);
  // Each instance's memory is >= 16 MB of ArrayBuffer: not one of them may survive.
  assert.ok(heapGrowth < 8, `JS heap + ArrayBuffers grew by ${heapGrowth} MB: ${heap.join(' ')}`);
  // No per-instance process listeners piling up.
  assert.ok(listeners.every((n) => n <= 2), `process listeners: ${listeners}`);
});

test('threaded build: load + dispose 30 times: RSS stays flat (the pthread workers end too)', () => {
  const { rss, listeners } = run('dispose', 'auto');
  const rssGrowth = Math.max(...rss) - rss[0];
  assert.ok(rssGrowth < 60, `RSS grew by ${rssGrowth} MB: ${rss.join(' ')}`);
  assert.ok(listeners.every((n) => n <= 2), `process listeners: ${listeners}`);
});

test('control: keeping the 30 models alive is visible in the same measurement', () => {
  const { heap } = run('keep');
  const growth = heap[heap.length - 1] - heap[0];
  assert.ok(growth > 29 * 8, `30 live instances add > 232 MB of ArrayBuffers, got ${growth} MB`);
});
