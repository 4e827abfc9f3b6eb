// constants.js - the constants the JS API shares with the C core, GENERATED from its headers by
// wasm/constants.c (npm run build rewrites this file when they change). Do not edit by hand.

/** Gpt2Error.code of each gpt2_err value (status.h). */
export const ERROR_CODES = Object.freeze(['ok', 'io', 'format', 'shape', 'unsupported', 'nomem', 'arg', 'range', 'aborted']);

/** gpt2_stop_reason names by value (generate.h). */
export const STOP_REASONS = Object.freeze(['none', 'max_tokens', 'eot', 'stop_sequence', 'context_full']);

/** gpt2_context_policy by value (generate.h). */
export const CONTEXT_POLICIES = Object.freeze(['stop', 'slide']);

/** gpt2_precision by value: the load option `precision` (loader.h). */
export const PRECISIONS = Object.freeze(['auto', 'f32', 'f16', 'q8_0']);

/** gpt2_dtype by value: how weights are stored (matrix.h). */
export const DTYPES = Object.freeze(['f32', 'f16', 'q8_0']);

/** gpt2_matrix_kind by value (weights.h). */
export const MATRIX_KINDS = Object.freeze(['wte', 'lm_head', 'qkv', 'attn_proj', 'fc', 'mlp_proj']);

/** gpt2_optimizer by value (train.h). */
export const OPTIMIZERS = Object.freeze(['adamw', 'sgd']);

/** gpt2_lr_schedule by value (train.h). */
export const SCHEDULES = Object.freeze(['constant', 'cosine']);

/** Limits and sizes of the core. */
export const LIMITS = Object.freeze({
  maxStopSequences: 8, // GPT2_MAX_STOP_SEQUENCES (generate.h)
  prefillBatch: 64, // GPT2_PREFILL_BATCH: tokens per forward step (generate.h)
  draftTokensMax: 16, // GPT2_SPECULATIVE_MAX_K (speculative.h)
  maxHeaderBytes: 104857600, // GPT2_ST_MAX_HEADER: a safetensors header's limit (safetensors.h)
  precisionReasonBytes: 192, // gpt2_weights.precision_reason (weights.h)
});

/** gpt2_generate_params_default's values (generate.h, sampler.h). */
export const GENERATE_DEFAULTS = Object.freeze({ maxTokens: 64, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, slideKeep: 0 });

/** gpt2_train_options_default's values (train.h). */
export const TRAIN_DEFAULTS = Object.freeze({ batch: 4, seq: 64, gradAccum: 1, optimizer: 'adamw', lr: 0.0001, beta1: 0.9, beta2: 0.999, eps: 1e-08, weightDecay: 0, gradClip: 1, warmup: 0, schedule: 'constant' });

/** Byte sizes and field offsets of the structs JS reads or writes (wasm32). */
export const LAYOUT = Object.freeze({
  error: Object.freeze({ size: 260, code: 0, message: 4 }),
  piece: Object.freeze({ size: 16, id: 0, text: 4, len: 8, stop: 12 }),
  decoder: Object.freeze({ size: 4 }),
  generateParams: Object.freeze({ size: 104, temperature: 0, topK: 4, topP: 8, repetitionPenalty: 12, seed: 16, biasIds: 24, bias: 28, nBias: 32, maxTokens: 40, ignoreEot: 44, nStop: 48, stop: 52, nBanned: 84, bannedWords: 88, contextPolicy: 92, slideKeep: 96, truncatePrompt: 100 }),
  trainOptions: Object.freeze({ size: 64, batch: 0, seq: 4, gradAccum: 8, optimizer: 12, lr: 16, beta1: 20, beta2: 24, eps: 28, weightDecay: 32, gradClip: 36, warmup: 40, schedule: 44, totalSteps: 48, shuffle: 52, seed: 56 }),
});
