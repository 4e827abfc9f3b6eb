// Type-checks the fine-tuning API of js/index.d.ts (tsc --noEmit -p tests/types).
import { load, type FinetuneStep, type FinetuneOptions } from 'gpt2-wasm';

export async function teach(text: string): Promise<number> {
  const model = await load('tests/fixtures/tiny-f32');
  const options: FinetuneOptions = { steps: 3, batch: 2, seq: 16, lr: 1e-3, optimizer: 'adamw', shuffle: 7, valFraction: 0.1 };
  let last: FinetuneStep | undefined;
  for await (const s of model.finetune(text, options)) last = s;
  const files = await model.save();
  const bytes: Uint8Array = files['model.safetensors'];
  const paths: string[] = await model.save('/tmp/out', { dtype: 'f16' });
  model.dispose();
  return (last?.valLoss ?? last?.loss ?? 0) + bytes.length + paths.length;
}
