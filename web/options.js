// options.js - the sampling settings of the Generate tab (#settings), used by Generate, by
// Continue in Write and by Chat, and the checking of every number field of the page.
//
//   #temperature #top-k #top-p #repetition-penalty #max-tokens #seed   sampling controls
//   #greedy, #defaults   sampling shortcuts
//   #banned-words        "Never use these words": comma-separated, passed as bannedWords
//   Every <input type=number> is checked against its own min, max and step as it is typed
//   (aria-invalid) and when it is read (an Error with words, the field focused).
//   The settings sit beside the output on wide screens (open), below it on phones (closed).
import { $ } from './page.js';

const DEFAULTS = { temperature: '0.8', topK: '40', topP: '0.95', repetitionPenalty: '1.1', maxTokens: '100', seed: '' };
const GREEDY = { temperature: '0', topK: '0', topP: '1', repetitionPenalty: '1' };

/**
 * What is wrong with a number field's value against its own min, max and step (a step of 1:
 * whole numbers), or null when it is fine. Empty is fine when the field has a placeholder
 * (it then means the placeholder, e.g. "random").
 */
function numberProblem(input, name) {
  const raw = input.value.trim();
  if (raw === '' && input.placeholder) return null;
  const min = input.min === '' ? undefined : Number(input.min);
  const max = input.max === '' ? undefined : Number(input.max);
  const integer = input.step === '1';
  const v = Number(raw);
  if (raw !== '' && Number.isFinite(v) && !(integer && !Number.isInteger(v)) &&
      !(min !== undefined && v < min) && !(max !== undefined && v > max)) return null;
  const range = min !== undefined && max !== undefined ? `from ${min} to ${max}` : min !== undefined ? `at least ${min}` : `at most ${max}`;
  return `${name} must be ${integer ? 'a whole number' : 'a number'} ${range}.`;
}

const fieldName = (input) => (document.querySelector(`label[for="${input.id}"]`) || {}).textContent || input.id;

/** Marks a number field invalid (aria-invalid) or valid; returns its problem or null. */
function markNumber(input) {
  const problem = numberProblem(input, fieldName(input));
  if (problem) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
  return problem;
}

/**
 * Wires the settings and the number fields.
 * @returns {{ read: () => object, readNumber: (input: HTMLInputElement, opts?: { empty?: any }) => any,
 *   bannedWords: () => string[], seedFixed: () => boolean }}
 *   read: the generation options (temperature, topK, topP, repetitionPenalty, maxTokens, seed
 *   (a random one when the field is empty), bannedWords); read and readNumber throw an Error
 *   with words for a value out of its field's range
 */
export function initOptions() {
  const el = {
    settings: $('settings'), temperature: $('temperature'), topK: $('top-k'), topP: $('top-p'),
    repetitionPenalty: $('repetition-penalty'), maxTokens: $('max-tokens'), seed: $('seed'), bannedWords: $('banned-words'),
  };

  /** A number field's value, checked against its min/max/step; throws an Error with words. */
  function readNumber(input, { empty } = {}) {
    const problem = markNumber(input);
    if (problem) {
      if (el.settings.contains(input)) el.settings.open = true;
      input.focus();
      throw new Error(problem);
    }
    const raw = input.value.trim();
    return raw === '' ? empty : Number(raw);
  }

  /** The "Never use these words" list: comma-separated, trimmed, empty entries dropped. */
  function bannedWords() {
    return el.bannedWords.value.split(',').map((w) => w.trim()).filter((w) => w !== '');
  }

  function read() {
    const seed = readNumber(el.seed, { empty: null });
    return {
      temperature: readNumber(el.temperature),
      topK: readNumber(el.topK),
      topP: readNumber(el.topP),
      repetitionPenalty: readNumber(el.repetitionPenalty),
      maxTokens: readNumber(el.maxTokens),
      seed: seed ?? Math.floor(Math.random() * 2 ** 31),
      bannedWords: bannedWords(),
    };
  }

  function set(values) {
    for (const [k, v] of Object.entries(values)) {
      el[k].value = v;
      el[k].removeAttribute('aria-invalid');
    }
  }

  $('greedy').addEventListener('click', () => set(GREEDY));
  $('defaults').addEventListener('click', () => set(DEFAULTS));
  for (const input of document.querySelectorAll('input[type="number"]')) {
    input.addEventListener('input', () => markNumber(input));
  }
  if (matchMedia('(min-width: 960px)').matches) el.settings.open = true;

  return { read, readNumber, bannedWords, seedFixed: () => el.seed.value.trim() !== '' };
}
