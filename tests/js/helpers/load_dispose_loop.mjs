// Child process of memory.test.mjs (run with --expose-gc): loads and disposes a model N times
// (or, with mode 'keep', keeps them all) and prints one JSON line { rss: [MB after each round], heap: [...], listeners }.
import { load } from '../../../js/index.js';

const [dir, n = '30', mode = 'dispose', threadsArg = '1'] = process.argv.slice(2);
const threads = threadsArg === 'auto' ? 'auto' : Number(threadsArg); // 'auto': the threaded build in Node
const kept = []; // mode 'keep': models are not disposed (the control: memory must grow)
const mb = (x) => Math.round((x / 1048576) * 10) / 10;
const rss = [];
const heap = [];
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 5));
  }
};
for (let i = 0; i < Number(n); i++) {
  const model = await load(dir, { threads });
  if (threads === 'auto' && model.info.threads < 2 && i === 0) console.error(`note: threads ${model.info.threads}`);
  const text = model.detokenize(model.tokenize('memory check'));
  if (text !== 'memory check') throw new Error('bad round trip');
  for await (const _ of model.generate('abc', { maxTokens: 4, temperature: 0 }));
  if (mode === 'keep') kept.push(model);
  else model.dispose();
  await settle();
  const m = process.memoryUsage();
  rss.push(mb(m.rss));
  heap.push(mb(m.heapUsed + m.external + m.arrayBuffers));
}
const listeners = ['uncaughtException', 'unhandledRejection', 'exit'].map((e) => process.listenerCount(e));
console.log(JSON.stringify({ rss, heap, listeners, gc: typeof globalThis.gc === 'function' }));
