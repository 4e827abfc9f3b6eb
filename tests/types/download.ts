// The downloader's declarations (js/index.d.ts), type-checked (not run) by `tsc -p tests/types`.
import { download, load, Gpt2Error, type DownloadOptions, type ModelDownloadProgress } from 'gpt2-wasm';

function show(p: ModelDownloadProgress): string {
  if (p.phase === 'download') {
    const percent = p.total === undefined ? '?' : ((100 * p.loaded) / p.total).toFixed(0);
    const fileTotal: number | undefined = p.fileTotal;
    return `${p.file}: ${p.fileLoaded} / ${fileTotal ?? '?'} bytes (${percent}% of all)`;
  }
  const file: null = p.file;
  return `done: ${p.total} bytes ${String(file)}`;
}

export async function fetchAndRun(signal: AbortSignal): Promise<string> {
  const options: DownloadOptions = {
    dir: 'models/distilgpt2',
    baseUrl: 'https://huggingface.co',
    revision: 'main',
    onProgress: (p) => console.error(show(p)),
    signal,
    timeout: 60000,
    retries: 5,
    retryDelay: 1000,
  };
  let dir: string;
  try {
    dir = await download('distilgpt2', options);
  } catch (e) {
    if (e instanceof Gpt2Error && e.code === 'io') console.error(e.message);
    throw e;
  }
  await download('someone/gpt2-finetune'); // any repository id
  const model = await load(dir);
  const text = model.detokenize(model.tokenize('Hello'));
  model.dispose();
  return text;
}

// @ts-expect-error the name is required
void download();
// @ts-expect-error dir is a string
void download('gpt2', { dir: 1 });
// @ts-expect-error no such option
void download('gpt2', { resume: false });
