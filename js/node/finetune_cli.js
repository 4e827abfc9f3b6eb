// finetune_cli.js - `gpt2-wasm finetune`: the native `gpt2 finetune`'s options and output
// (cli/finetune.c) over model.finetune() / model.save(). --out receives the same files,
// finetune-state.bin included (the same bytes natively and here), so either tool --resumes
// the other's run.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Option name -> [key, kind], merged into the CLI's table. */
export const FINETUNE_OPTIONS = {
  '--data': ['data', 'string'],
  '--out': ['out', 'string'],
  '--steps': ['steps', 'int'],
  '--batch': ['batch', 'int'],
  '--seq': ['seq', 'int'],
  '--grad-accum': ['gradAccum', 'int'],
  '--lr': ['lr', 'float'],
  '--optimizer': ['optimizer', 'string'],
  '--weight-decay': ['weightDecay', 'float'],
  '--beta1': ['beta1', 'float'],
  '--beta2': ['beta2', 'float'],
  '--eps': ['eps', 'float'],
  '--grad-clip': ['gradClip', 'float'],
  '--warmup': ['warmup', 'int'],
  '--schedule': ['schedule', 'string'],
  '--shuffle': ['shuffle', 'string'],
  '--val-fraction': ['valFraction', 'float'],
  '--eval-every': ['evalEvery', 'int'],
  '--save-dtype': ['saveDtype', 'string'],
  '--threads': ['threads', 'int'],
  '--json': ['json', 'flag'],
  '--force': ['force', 'flag'],
  '--resume': ['resume', 'flag'],
  '--save-every': ['saveEvery', 'int'],
  '--no-save': ['noSave', 'flag'],
};

export const FINETUNE_USAGE = `  finetune    finetune --data FILE --out DIR [options]: train the model on a text and
              save it as a Hugging Face folder; options as the native gpt2 finetune
              (--steps --batch --seq --lr --optimizer adamw|sgd --weight-decay --beta1
              --beta2 --eps --grad-clip --grad-accum --warmup --schedule constant|cosine
              --shuffle off|SEED --val-fraction --eval-every --save-dtype f32|f16
              --threads --json --force --save-every K --resume --no-save); --out also
              gets finetune-state.bin, which --resume continues from (--steps is the total)
`;

const TRAIN_KEYS = ['steps', 'batch', 'seq', 'gradAccum', 'lr', 'optimizer', 'weightDecay', 'beta1', 'beta2', 'eps',
  'gradClip', 'warmup', 'schedule', 'valFraction', 'evalEvery'];
const OWN_KEYS = ['data', 'out', 'shuffle', 'saveDtype', 'threads', 'json', 'force', 'resume', 'saveEvery', 'noSave', 'model',
  'precision', 'memoryBudget', 'quiet'];
const STATE = 'finetune-state.bin';

/** Writes dir/name through a temporary file renamed into place (as the native tool). */
function putFile(dir, name, bytes) {
  const path = join(dir, name), tmp = `${path}.tmp`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** C's %.2e: two decimals, an exponent of at least two digits. */
const e2 = (v) => v.toExponential(2).replace(/e([+-])(\d)$/, 'e$10$2');

/**
 * Runs the command; returns the exit status. helpers: { loadModel, usageError, out, optionName }.
 * @param {Record<string, any>} o parsed options
 */
export async function finetuneCommand(positional, o, helpers) {
  const { loadModel, usageError, out, optionName, g9 } = helpers;
  if (positional.length) return usageError(`unexpected argument '${positional[0]}'`);
  const other = Object.keys(o).find((k) => ![...TRAIN_KEYS, ...OWN_KEYS].includes(k) && !(k === 'stop' && o.stop.length === 0));
  if (other) return usageError(`finetune does not take ${optionName(other)}`);
  if (o.data === undefined) return usageError('--data FILE is required');
  if (o.noSave && (o.out !== undefined || o.resume || o.saveEvery !== undefined)) {
    return usageError('--no-save writes nothing: it takes no --out, --resume or --save-every');
  }
  if (o.out === undefined && !o.noSave) return usageError('--out DIR is required');
  if (o.saveDtype !== undefined && !['f32', 'f16'].includes(o.saveDtype)) return usageError(`--save-dtype is f32 or f16, got '${o.saveDtype}'`);
  if (o.optimizer !== undefined && !['adamw', 'sgd'].includes(o.optimizer)) return usageError(`--optimizer is adamw or sgd, got '${o.optimizer}'`);
  if (o.schedule !== undefined && !['constant', 'cosine'].includes(o.schedule)) return usageError(`--schedule is constant or cosine, got '${o.schedule}'`);
  let shuffle = false;
  if (o.shuffle !== undefined && o.shuffle !== 'off') {
    if (!/^\d+$/.test(o.shuffle) || !Number.isSafeInteger(Number(o.shuffle))) {
      return usageError(`--shuffle is off or a seed (a whole number >= 0), got '${o.shuffle}'`);
    }
    shuffle = Number(o.shuffle);
  }
  if (o.saveEvery !== undefined && !(Number.isInteger(o.saveEvery) && o.saveEvery >= 1)) {
    return usageError(`--save-every needs a whole number >= 1, got '${o.saveEvery}'`);
  }
  if (o.resume && !existsSync(join(o.out, STATE))) return usageError(`--resume: ${o.out} holds no ${STATE}`);
  if (!o.force && !o.resume && !o.noSave && (existsSync(join(o.out, 'model.safetensors')) || existsSync(join(o.out, 'config.json')))) {
    return usageError(`--out ${o.out} already holds a model: pass --force to overwrite it`);
  }
  const text = readFileSync(o.data, 'utf8');
  if (text.length === 0) throw new Error(`the training text ${o.data} is empty`);
  const options = { shuffle };
  for (const k of TRAIN_KEYS) if (o[k] !== undefined) options[k] = o[k];
  const steps = options.steps ?? 100;
  options.steps = steps;
  // a checkpoint every --save-every steps and always after the last (as natively)
  if (!o.noSave) options.checkpointEvery = o.saveEvery ?? steps;
  if (o.resume) options.resume = new Uint8Array(readFileSync(join(o.out, STATE)));
  const dtype = o.saveDtype ?? 'f32';
  const model = await loadModel(o);
  /** The model folder and the checkpoint into --out (the model holds the checkpoint's weights). */
  const saveAll = async (checkpoint) => {
    await model.save(o.out, { dtype });
    putFile(o.out, STATE, checkpoint);
  };
  try {
    const t0 = Date.now();
    let last = null;
    for await (const s of model.finetune(text, options)) {
      const elapsed = (Date.now() - t0) / 1000;
      if (o.json) {
        // the native tool's line: floats as %.9g
        out(`{"step":${s.step},"steps":${steps},"loss":${g9(s.loss)},"lr":${g9(s.lr)},"grad_norm":${g9(s.gradNorm)},` +
          `"tokens_per_second":${s.tokensPerSecond.toFixed(1)},"elapsed":${elapsed.toFixed(3)}` +
          `${s.valLoss !== undefined ? `,"val_loss":${g9(s.valLoss)}` : ''}}\n`);
      } else {
        out(`step ${s.step}/${steps}  loss ${s.loss.toFixed(4)}${s.valLoss !== undefined ? `  val ${s.valLoss.toFixed(4)}` : ''}` +
          `  lr ${e2(s.lr)}  ${Math.round(s.tokensPerSecond)} tok/s  ${elapsed.toFixed(1)} s\n`);
      }
      if (s.checkpoint) {
        last = s.step;
        await saveAll(s.checkpoint);
      }
    }
    // resumed with no step left: the checkpoint's model is saved again, as natively
    if (last === null && options.resume) await saveAll(options.resume);
    if (!o.json && !o.quiet && !o.noSave) process.stderr.write(`gpt2-wasm finetune: saved ${o.out}\n`);
  } finally {
    model.dispose();
  }
  return 0;
}
