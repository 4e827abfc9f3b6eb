// Shared helpers for the JS API tests: paths, fixtures, temporary checkpoint copies, and
// assertions on the errors the API throws.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, cpSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const fixturesDir = join(root, 'tests', 'fixtures');
export const FIXTURES = ['tiny-f32', 'tiny-f16', 'tiny-bf16'];
export const FILE_NAMES = ['config.json', 'vocab.json', 'merges.txt', 'model.safetensors'];
export const native = join(root, 'build', 'gpt2');
export const fixture = (name = 'tiny-f32') => join(fixturesDir, name);

// GPT2_WASM_DIST: another build's output folder (see js/wasm_module.js)
const distDir = process.env.GPT2_WASM_DIST || join(root, 'dist');
if (!existsSync(join(distDir, 'gpt2.wasm')) || !existsSync(join(distDir, 'gpt2.mjs'))) {
  throw new Error(`${distDir}/gpt2.wasm is missing: run \`npm run build\` before these tests`);
}

const expectedCache = new Map();
/** The float64 reference outputs of a fixture (tests/fixtures/NAME/expected.json). */
export function expected(name) {
  if (!expectedCache.has(name)) expectedCache.set(name, JSON.parse(readFileSync(join(fixture(name), 'expected.json'), 'utf8')));
  return expectedCache.get(name);
}

/** The four files of a fixture as Uint8Arrays (fresh copies). */
export function fixtureBytes(name = 'tiny-f32') {
  const out = {};
  for (const f of FILE_NAMES) out[f] = new Uint8Array(readFileSync(join(fixture(name), f)));
  return out;
}

/** Sum of the four file sizes of a fixture folder. */
export function fixtureTotal(name = 'tiny-f32') {
  return Object.values(fixtureBytes(name)).reduce((n, b) => n + b.byteLength, 0);
}

/**
 * A temporary copy of a fixture's four files, with edits: { file: Uint8Array|string|null }
 * (null deletes the file). Returns { dir, cleanup }.
 */
export function tempCheckpoint(edits = {}, name = 'tiny-f32') {
  const dir = mkdtempSync(join(tmpdir(), 'gpt2-js-test-'));
  for (const f of FILE_NAMES) cpSync(join(fixture(name), f), join(dir, f));
  for (const [f, v] of Object.entries(edits)) {
    if (v === null) rmSync(join(dir, f));
    else writeFileSync(join(dir, f), v);
  }
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Parses a safetensors file: { header (object), headerLen, data (Uint8Array after header) }. */
export function parseSafetensors(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  return { header, headerLen, data: bytes.subarray(8 + headerLen) };
}

/** Builds a safetensors file from a header object and the data bytes (header padded to 8). */
export function buildSafetensors(header, data) {
  let json = JSON.stringify(header);
  while ((json.length + 8) % 8 !== 0) json += ' ';
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.byteLength), true);
  out.set(h, 8);
  out.set(data, 8 + h.byteLength);
  return out;
}

/** Asserts that fn (sync or async) throws a Gpt2Error with this code and a message matching re. */
export async function assertGpt2Error(fn, code, re) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected a Gpt2Error (${code}), but nothing was thrown`);
  assert.equal(err.name, 'Gpt2Error', `expected a Gpt2Error, got ${err.name}: ${err.message}`);
  assert.equal(err.code, code, `code of: ${err.message}`);
  if (re) assert.match(err.message, re);
  return err;
}

/** Asserts that fn throws (rejects with) a DOMException named AbortError. */
export async function assertAbortError(fn) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'expected an AbortError, but nothing was thrown');
  assert.equal(err.name, 'AbortError', `expected AbortError, got ${err.name}: ${err.message}`);
  return err;
}

/** Max absolute difference between two equal-length numeric arrays. */
export function maxAbsDiff(a, b) {
  assert.equal(a.length, b.length, 'lengths differ');
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Runs a generation to the end; returns { pieces, text, tokens, summary }. */
export async function collect(gen) {
  const pieces = [];
  for await (const p of gen) pieces.push(p);
  const summary = await gen.summary;
  return {
    pieces,
    text: pieces.map((p) => p.text).join(''),
    tokens: pieces.map((p) => p.token).filter((t) => t !== null),
    summary,
  };
}
