// A realistic use of gpt2-wasm, type-checked (not run) by `tsc -p tests/types` against
// js/index.d.ts. The `@ts-expect-error` lines at the end prove that wrong usage is rejected.
import {
  defaultModelUrl,
  Gpt2Error,
  Gpt2Model,
  load,
  type Generation,
  type GenerateOptions,
  type Gpt2ErrorCode,
  type LoadOptions,
  type LoadProgress,
  type ModelConfig,
  type ModelFiles,
  type Piece,
  type ScoreResult,
  type StopReason,
} from 'gpt2-wasm';

/** Shows load progress: the total may be unknown while downloading. */
function showProgress(p: LoadProgress): void {
  if (p.phase === 'download') {
    const file: string = p.file;
    const percent = p.total === undefined ? '?' : ((100 * p.loaded) / p.total).toFixed(0);
    console.log(`${file}: ${p.loaded} bytes (${percent}%)`);
  } else {
    const total: number = p.total; // known once ready
    const file: null = p.file;
    console.log(`ready: ${total} bytes`, file);
  }
}

/** Explains an error for a person, narrowing on the error code. */
function describe(e: unknown): string {
  if (e instanceof Gpt2Error) {
    const code: Gpt2ErrorCode = e.code;
    switch (code) {
      case 'io':
        return `cannot read the model: ${e.message}`;
      case 'format':
      case 'shape':
      case 'unsupported':
        return `not a usable GPT-2 checkpoint: ${e.message}`;
      case 'nomem':
        return `not enough memory: ${e.message}`;
      case 'range':
        return `too long or bad token: ${e.message}`;
      case 'arg':
      case 'aborted':
      case 'unknown':
        return `${e.name} (${code}): ${e.message}`;
      default: {
        const never: never = code; // every code is handled above
        return never;
      }
    }
  }
  if (e instanceof DOMException && e.name === 'AbortError') return 'cancelled';
  return e instanceof Error ? e.message : String(e);
}

async function main(userTemperature?: number): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 60_000);
  const options: LoadOptions = { onProgress: showProgress, signal: controller.signal, memoryBudget: 512 << 20 };

  // The embedded model, a URL folder, or a local folder (Node).
  let model: Gpt2Model;
  try {
    model = await load(undefined, options);
  } catch (e) {
    console.error(describe(e));
    return;
  } finally {
    clearTimeout(timer);
  }
  const url: URL = defaultModelUrl();
  const config: Readonly<ModelConfig> = model.config;
  console.log(`${url.href}: ${config.nLayer} layers, context ${config.nCtx}, ${model.info.weightsBytes} bytes`);

  try {
    // Streaming generation with for-await, then the summary.
    const genOptions: GenerateOptions = {
      maxTokens: 40,
      temperature: userTemperature, // undefined = the default (allowed even with exactOptionalPropertyTypes)
      topK: 40,
      topP: 0.95,
      repetitionPenalty: 1.1,
      seed: 42,
      stop: ['\n\n', 'THE END'],
      signal: controller.signal,
    };
    const generation: Generation = model.generate('Once upon a time', genOptions);
    let text = '';
    for await (const piece of generation) {
      const p: Piece = piece;
      text += p.text;
      if (p.token !== null && p.token === model.eotId) break;
    }
    const summary = await generation.summary;
    const reason: StopReason = summary.stopReason;
    const tps: number | null = summary.timings.tokensPerSecond;
    console.log(text, reason, summary.tokens, summary.promptTokens, summary.timings.firstTokenMs, tps ?? 'n/a');

    // Token ids work as prompts too, and the iterator can be driven by hand.
    const ids: number[] = model.tokenize('Hello<|endoftext|>', { special: true });
    const manual = model.generate(ids, { maxTokens: 3, temperature: 0, ignoreEot: true });
    for (let r = await manual.next(); !r.done; r = await manual.next()) console.log(r.value.text, r.value.token);
    await manual.return();

    // Scoring.
    const score: ScoreResult = model.score('The quick brown fox jumps over the lazy dog.');
    for (const t of score.tokens) console.log(t.id, JSON.stringify(t.text), t.logprob?.toFixed(3) ?? '-', t.rank ?? '-');
    if (score.perplexity !== null) console.log(`perplexity ${score.perplexity.toFixed(2)}`);

    // Tokenize, detokenize, logits.
    const back: string = model.detokenize(ids);
    const logits: Float32Array = model.logits(new Int32Array(ids));
    console.log(back, logits.length === config.nVocab);
  } catch (e) {
    console.error(describe(e));
  } finally {
    model.dispose();
  }
}

/** Loading from objects: e.g. files picked in a browser, or Responses from a cache. */
async function fromFiles(files: FileList): Promise<Gpt2Model> {
  const byName = (name: string): File => {
    const f = Array.from(files).find((x) => x.name === name);
    if (!f) throw new Gpt2Error(`missing ${name}`, 'arg');
    return f;
  };
  const objects: ModelFiles = {
    'config.json': byName('config.json'),
    'vocab.json': await byName('vocab.json').arrayBuffer(),
    'merges.txt': new Uint8Array(await byName('merges.txt').arrayBuffer()),
    'model.safetensors': byName('model.safetensors').stream(),
  };
  return load(objects, { fetch: (input, init) => fetch(input, init), wasmUrl: new URL('https://example.com/gpt2.wasm') });
}

/** Things the declarations reject. */
async function wrongUsage(model: Gpt2Model): Promise<void> {
  // @ts-expect-error topP is a number, not a string
  model.generate('x', { topP: '0.9' });
  // @ts-expect-error there is no `maxNewTokens` option (it is maxTokens)
  model.generate('x', { maxNewTokens: 10 });
  // @ts-expect-error stop is a string or an array of strings
  model.generate('x', { stop: 5 });
  // @ts-expect-error tokenize takes a string, not ids
  model.tokenize([1, 2, 3]);
  // @ts-expect-error detokenize takes ids, not a string
  model.detokenize('hello');
  // @ts-expect-error a piece's text is a string, its token may be null
  for await (const piece of model.generate('x')) { const n: number = piece.token; console.log(n); }
  // @ts-expect-error the summary is a promise
  model.generate('x').summary.stopReason;
  // @ts-expect-error 'finished' is not a stop reason
  const r: StopReason = 'finished';
  // @ts-expect-error 'timeout' is not an error code
  new Gpt2Error('boom', 'timeout');
  // @ts-expect-error models are made by load(), not constructed
  new Gpt2Model();
  // @ts-expect-error config is read-only
  model.config.nCtx = 2048;
  // @ts-expect-error an object source needs all four files
  await load({ 'config.json': new Uint8Array(0) });
  // @ts-expect-error onProgress gets one event argument
  await load(undefined, { onProgress: (loaded: number, total: number) => console.log(loaded, total) });
  console.log(r);
}

void main();
void fromFiles;
void wrongUsage;
