// Type-checks a page's use of 'gpt2-wasm/browser' (js/browser/index.d.ts) and of 'gpt2-wasm' in a
// browser bundle, the way a user of the package sees them (package.json "exports", "types").
import { clearModelCache, Gpt2Error, isCrossOriginIsolated, loadInWorker, planInWorker } from 'gpt2-wasm/browser';
import { RemoteModel, type BrowserLoadProgress, type LoadPlan, type RemoteSession } from 'gpt2-wasm/browser';
import { load } from 'gpt2-wasm';

export async function page(output: { textContent: string | null }): Promise<void> {
  const model: RemoteModel = await loadInWorker(undefined, {
    onProgress: (p: BrowserLoadProgress) => console.log(p.phase, p.loaded, p.total, p.notice),
    assetsUrl: 'https://cdn.jsdelivr.net/npm/gpt2-wasm@0.1.0/',
    precision: 'q8_0',
    cache: true,
  });
  const threads: number = model.info.threads;
  const fallback: string | undefined = model.info.threadsFallback;
  const hits: number | undefined = model.info.cache?.hits;
  console.log(threads, fallback, hits, model.config.nCtx, isCrossOriginIsolated());
  const gen = model.generate('Once upon a time', { maxTokens: 40, temperature: 0 });
  for await (const { text } of gen) output.textContent += text;
  const { stopReason } = await gen.summary;
  const draft: RemoteModel = await loadInWorker(undefined, { into: model, precision: 'q8_0' });
  const fast = model.generate('Once upon a time', { maxTokens: 40, temperature: 0, draft, draftTokens: 4 });
  for await (const { text } of fast) output.textContent += text;
  const rate: number | null | undefined = (await fast.summary).speculative?.rate;
  console.log(rate, draft.guest);
  await draft.dispose();
  const plan: LoadPlan = await planInWorker('https://huggingface.co/openai-community/gpt2-xl/resolve/main/', { precision: 'auto' });
  const chosen: 'f32' | 'f16' | 'q8_0' | null = plan.precision;
  console.log(chosen, plan.reason, plan.need, plan.budget, plan.bytes.f32, plan.downloadBytes);
  const session: RemoteSession = await model.session();
  const ids: number[] = await session.append('Hello');
  const position: number = await session.position;
  console.log(stopReason, ids, position, session.lastPosition);
  // Methods of Gpt2Model and Session with no code of their own in the page: the same, with promises.
  const logits: Float32Array = await model.logits(ids);
  const computed: number = await session.computedTokens;
  const fork: RemoteSession = await session.fork();
  // @ts-expect-error: a getter of the worker's session is a promise
  const wrong: number = session.position;
  console.log(logits.length, computed, await fork.text, wrong, model instanceof RemoteModel);
  await session.dispose();
  const controller = new AbortController();
  for await (const s of model.finetune('My own text', { steps: 60, batch: 4, seq: 64, valFraction: 0.1, signal: controller.signal })) {
    const held: number | undefined = s.valLoss;
    console.log(s.step, s.loss, held, s.tokensPerSecond);
  }
  const files = await model.save();
  const weights: Uint8Array = files['model.safetensors'];
  console.log(weights.length, (await model.save({ dtype: 'f16' }))['config.json'].length);
  await model.dispose();
  const removed: number = await clearModelCache();
  console.log(removed);

  const direct = await load(null, { assetsUrl: new URL('/gpt2-wasm/', 'https://example.com'), threads: 1 });
  console.log(direct.info.build);
  direct.dispose();
  try {
    await loadInWorker('https://example.com/model/', { workerUrl: '/my-worker.js' });
  } catch (e) {
    if (e instanceof Gpt2Error) console.log(e.code);
  }
}
