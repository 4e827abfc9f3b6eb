// Unknown or misspelled option names are rejected (Gpt2Error 'arg') by every public function
// that takes an options object, naming the option and the closest valid one, before any work
// is done; every documented option name (index.d.ts) is accepted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load, download } from '../../js/index.js';
import { quantizeFolder } from '../../js/node/quantize.js';
import { OPTION_NAMES } from '../../js/options.js';
import { assertGpt2Error, fixture, root } from './helpers/common.mjs';

let model;
before(async () => { model = await load(fixture('tiny-f32')); });
after(() => model.dispose());

/** Asserts fn throws (or rejects with) Gpt2Error 'arg' with exactly this message. */
async function rejects(fn, message) {
  const err = await assertGpt2Error(fn, 'arg');
  assert.equal(err.message, message);
}

test('generate: a misspelled option names the closest valid one', async () => {
  // The example: `maxtokens` used to generate the default 64 tokens silently.
  await rejects(() => model.generate('Hello', { maxtokens: 3 }), "unknown option 'maxtokens' (did you mean 'maxTokens'?)");
  await rejects(() => model.generate('Hello', { max_tokens: 3 }), "unknown option 'max_tokens' (did you mean 'maxTokens'?)");
  await rejects(() => model.generate('Hello', { temprature: 0 }), "unknown option 'temprature' (did you mean 'temperature'?)");
  await rejects(() => model.generate('Hello', { topk: 5 }), "unknown option 'topk' (did you mean 'topK'?)");
  await rejects(() => model.generate('Hello', { seeed: 1 }), "unknown option 'seeed' (did you mean 'seed'?)");
  await rejects(() => model.generate('Hello', { stops: ['.'] }), "unknown option 'stops' (did you mean 'stop'?)");
  await rejects(() => model.generate('Hello', { bannedWrods: ['x'] }), "unknown option 'bannedWrods' (did you mean 'bannedWords'?)");
  // a key set to undefined is still a misspelling
  await rejects(() => model.generate('Hello', { maxTokens: 2, signl: undefined }), "unknown option 'signl' (did you mean 'signal'?)");
});

test('generate: an option with no close name lists the valid ones', async () => {
  await rejects(() => model.generate('Hello', { n_predict: 3 }),
    "unknown option 'n_predict' (valid options: maxTokens, temperature, topK, topP, repetitionPenalty, seed, " +
    'stop, ignoreEot, special, logitBias, bannedWords, contextPolicy, slideKeep, truncatePrompt, signal, draft, draftTokens)');
});

test('options that are not an object are rejected', async () => {
  await rejects(() => model.generate('Hello', 5), 'options must be an object, got number 5');
  await rejects(() => model.generate('Hello', ['maxTokens']), 'options must be an object, got an array');
  await rejects(() => model.tokenize('Hello', 'special'), 'options must be an object, got string special');
  // undefined and null mean no options
  assert.deepEqual(model.tokenize('Hello', null), model.tokenize('Hello'));
});

test('session.generate and session.append check their options', async () => {
  const s = model.session();
  try {
    await rejects(() => s.generate({ maxtokens: 2 }), "unknown option 'maxtokens' (did you mean 'maxTokens'?)");
    await rejects(() => s.append('Hello', { specail: true }), "unknown option 'specail' (did you mean 'special'?)");
    assert.equal(s.position, 0, 'nothing was appended');
    s.append('Hello', { special: false });
    assert.ok(s.position > 0);
  } finally {
    s.dispose();
  }
});

test('tokenize, score and rank check their options', async () => {
  await rejects(() => model.tokenize('Hello', { Special: true }), "unknown option 'Special' (did you mean 'special'?)");
  // tokenize takes only `special`: score's topK is not one of its options
  await rejects(() => model.tokenize('Hello', { topK: 2 }), "unknown option 'topK' (valid options: special)");
  await rejects(() => model.score('Hello world', { topk: 2 }), "unknown option 'topk' (did you mean 'topK'?)");
  await rejects(() => model.score('Hello world', { maxTokens: 2 }), "unknown option 'maxTokens' (valid options: special, topK)");
  await rejects(() => model.rank('Hello', [' a', ' b'], { bye: 'sum' }), "unknown option 'bye' (did you mean 'by'?)");
  await rejects(() => model.rank('Hello', [' a', ' b'], { sort: 'sum' }), "unknown option 'sort' (valid options: by, special)");
});

test('load rejects a misspelled option before fetching anything', async () => {
  let fetched = 0;
  const fetch = async () => { fetched++; throw new Error('must not be called'); };
  await rejects(() => load('http://127.0.0.1:9/model/', { fetch, memorybudget: 1 << 30 }),
    "unknown option 'memorybudget' (did you mean 'memoryBudget'?)");
  await rejects(() => load('http://127.0.0.1:9/model/', { fetch, precison: 'f16' }),
    "unknown option 'precison' (did you mean 'precision'?)");
  await rejects(() => load(undefined, { thread: 2 }), "unknown option 'thread' (did you mean 'threads'?)");
  assert.equal(fetched, 0);
});

test('download rejects a misspelled option before touching the network or the disk', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'gpt2-options-'));
  try {
    let fetched = 0;
    const fetch = async () => { fetched++; throw new Error('must not be called'); };
    await rejects(() => download('gpt2', { fetch, dir: join(parent, 'm'), retires: 0 }),
      "unknown option 'retires' (did you mean 'retries'?)");
    await rejects(() => download('gpt2', { fetch, dir: join(parent, 'm'), base_url: 'http://127.0.0.1:9' }),
      "unknown option 'base_url' (did you mean 'baseUrl'?)");
    assert.equal(fetched, 0);
    assert.equal(existsSync(join(parent, 'm')), false, 'no folder was made');
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('quantize (the CLI\'s converter) rejects a misspelled option', async () => {
  const out = mkdtempSync(join(tmpdir(), 'gpt2-options-'));
  try {
    await rejects(() => quantizeFolder(fixture('tiny-f32'), join(out, 'q'), { tpye: 'q8_0' }),
      "unknown option 'tpye' (did you mean 'type'?)");
    assert.equal(existsSync(join(out, 'q')), false);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('every documented option is accepted', async () => {
  const controller = new AbortController();
  // all of GenerateOptions at once, with valid values
  const gen = model.generate('Hello', {
    maxTokens: 2, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1, stop: [], ignoreEot: true,
    special: false, logitBias: {}, bannedWords: [], contextPolicy: 'slide', slideKeep: 0, truncatePrompt: 'left',
    signal: controller.signal,
  });
  for await (const piece of gen) void piece;
  assert.equal((await gen.summary).tokens, 2);
  assert.equal(model.score('Hello world', { special: false, topK: 1 }).tokens.length, model.tokenize('Hello world').length);
  assert.equal(model.rank('Hello', [' a', ' b'], { by: 'sum', special: false }).length, 2);
  const m = await load(fixture('tiny-f32'), {
    onProgress: () => {}, signal: controller.signal, memoryBudget: 0, precision: 'auto', fetch: globalThis.fetch,
    wasmUrl: undefined, assetsUrl: undefined, threads: 1,
  });
  m.dispose();
});

/** The property names of an interface in index.d.ts, with those of the interfaces it extends. */
function declaredNames(dts, name) {
  const m = new RegExp(`export interface ${name}(?: extends (\\w+))? \\{\\n([\\s\\S]*?)\\n\\}`).exec(dts);
  assert.ok(m, `interface ${name} in index.d.ts`);
  const own = [...m[2].matchAll(/^ {2}(?:readonly )?(\w+)\??:/gm)].map((x) => x[1]);
  return [...(m[1] ? declaredNames(dts, m[1]) : []), ...own];
}

test('the checked option names are the ones index.d.ts documents', () => {
  const dts = readFileSync(join(root, 'js', 'index.d.ts'), 'utf8');
  const pairs = {
    load: 'LoadOptions', tokenize: 'TokenizeOptions', append: 'TokenizeOptions', score: 'ScoreOptions',
    rank: 'RankOptions', generate: 'GenerateOptions', download: 'DownloadOptions', finetune: 'FinetuneOptions',
  };
  for (const [fn, iface] of Object.entries(pairs)) {
    assert.deepEqual([...OPTION_NAMES[fn]].sort(), declaredNames(dts, iface).sort(), `${fn} vs ${iface}`);
  }
  const browserDts = readFileSync(join(root, 'js', 'browser', 'index.d.ts'), 'utf8');
  assert.deepEqual([...OPTION_NAMES.loadInWorker].sort(), declaredNames(browserDts, 'BrowserLoadOptions').sort(),
    'loadInWorker vs BrowserLoadOptions (browser/index.d.ts)');
});
