// make_tokenizer_expected.mjs - reference token ids from tiktoken for the C tokenizer tests.
//
// Usage (from the repository root, after `npm ci` installed the tiktoken devDependency):
//   node tools/make_tokenizer_expected.mjs
// Reads  tests/tokenizer/corpus.jsonl        one {"name", "text"} per line (hand-written)
// Writes tests/tokenizer/expected.jsonl      one {"name", "text", "ids", "ids_special"?}
//          per line: first every corpus case in order, then generated single-code-point
//          cases ("cp_XXXX"), then random strings over tricky characters ("rand_N"). ids = encode_ordinary(text) ("<|endoftext|>" is plain
//          text); ids_special = encode(text, "all") (the literal becomes id 50256),
//          present only when it differs from ids.
//        tests/tokenizer/decoder_expected.jsonl  one {"ids", "pieces", "tail"} per line:
//          what TextDecoder("utf-8") with {stream: true} returns after each token's bytes
//          (pieces) and at the final flush (tail); ids are drawn (seeded PRNG) mostly
//          from single-byte tokens and tokens that are not whole UTF-8 text.
//        tests/tokenizer/unicode_classes.txt  the class tiktoken's regex engine gives each
//          code point ("first last L|N|S", hex, runs; everything else is "other"),
//          found by probing a synthetic encoding (see classifyChunk).
import { readFileSync, writeFileSync } from "node:fs";
import { get_encoding, Tiktoken } from "tiktoken";

const CORPUS = "tests/tokenizer/corpus.jsonl";
const EXPECTED = "tests/tokenizer/expected.jsonl";
const DECODER = "tests/tokenizer/decoder_expected.jsonl";
const CLASSES = "tests/tokenizer/unicode_classes.txt";
const PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const enc = get_encoding("gpt2");
const utf8 = new TextEncoder();

function record(name, text) {
  const ids = Array.from(enc.encode_ordinary(text));
  const special = Array.from(enc.encode(text, "all"));
  const row = { name, text, ids };
  if (special.length !== ids.length || special.some((v, i) => v !== ids[i])) row.ids_special = special;
  return row;
}

// Classifies code points the way tiktoken's regex engine does, using an encoding whose
// ranks contain, for each probed character c (bytes b): all 1-byte tokens, every prefix
// of b, "a"+prefix, "1"+prefix, bb and bb"!". With the GPT-2 pattern:
//   c c "!" -> 1 token if c is "other" (one ` ?[^\s\p{L}\p{N}]+` piece), 2 if letter or
//              number (cc, "!"), 3 if whitespace ("\s+(?!\S)" then "\s+" then "!")
//   "a" c   -> 1 token only if c is a letter;  "1" c -> 1 token only if c is a number.
function classifyChunk(cps) {
  const ranks = new Map();
  const add = (bytes) => {
    const key = Buffer.from(bytes).toString("base64");
    if (!ranks.has(key)) ranks.set(key, ranks.size);
  };
  for (let b = 0; b < 256; b++) add([b]);
  for (const cp of cps) {
    const b = [...utf8.encode(String.fromCodePoint(cp))];
    for (let k = 2; k <= b.length; k++) add(b.slice(0, k));
    for (let k = 1; k <= b.length; k++) {
      add([0x61, ...b.slice(0, k)]);
      add([0x31, ...b.slice(0, k)]);
    }
    add([...b, ...b]);
    add([...b, ...b, 0x21]);
  }
  let bpe = "";
  for (const [key, rank] of ranks) bpe += key + " " + rank + "\n";
  const probe = new Tiktoken(bpe, {}, PATTERN);
  const out = cps.map((cp) => {
    const c = String.fromCodePoint(cp);
    const n1 = probe.encode_ordinary(c + c + "!").length;
    const n2 = probe.encode_ordinary("a" + c).length;
    const n3 = probe.encode_ordinary("1" + c).length;
    if (cp === 0x20) return "S"; // "  !" -> " ", " !": a plain space joins the "!" piece
    if (n1 === 2 && n2 === 1 && n3 === 2) return "L";
    if (n1 === 2 && n2 === 2 && n3 === 1) return "N";
    if (n1 === 3 && n2 === 2 && n3 === 2) return "S";
    if (n1 === 1 && n2 === 2 && n3 === 2) return "O";
    throw new Error(`U+${cp.toString(16)}: unexpected probe result ${n1} ${n2} ${n3}`);
  });
  probe.free();
  return out;
}

function classifyAll() {
  const runs = [];
  for (let start = 0; start < 0x110000; start += 8192) {
    const cps = [];
    for (let cp = start; cp < Math.min(start + 8192, 0x110000); cp++)
      if (cp < 0xd800 || cp > 0xdfff) cps.push(cp);
    const cls = classifyChunk(cps);
    cps.forEach((cp, i) => {
      const last = runs[runs.length - 1];
      if (last && last[2] === cls[i] && last[1] === cp - 1) last[1] = cp;
      else runs.push([cp, cp, cls[i]]);
    });
  }
  return runs;
}

const hex = (cp) => cp.toString(16).toUpperCase().padStart(4, "0");

// One text per sampled code point c, putting c next to letters, digits, spaces,
// punctuation, newlines and itself.
function codePointText(cp) {
  const c = String.fromCodePoint(cp);
  return "a" + c + "1" + c + " " + c + "!" + c + c + "  " + c + "x\n" + c + " 's";
}

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Random strings over characters where the pre-tokenizer's rules meet: spaces of
// several kinds, letters, digits, punctuation, apostrophes and contraction letters,
// multi-byte letters/numbers/symbols, and pieces of "<|endoftext|>".
const TRICKY = [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\u0085",
  "a", "Z", "s", "t", "re", "ve", "m", "ll", "d", "S", "'", "'", "\u2019", "1", "42", "\u0663", "\u00bd",
  "!", ".", "?!", "-", "\u00e9", "\u4e2d", "\uac00", "\u0301", "\u{1F600}", "\u{1F44B}\u{1F3FD}", "\u200d",
  "\u200b", "\ufeff", "\u001c", "\u0000", "<|endoftext|>", "<|", "|>", "endoftext"];

const corpus = readFileSync(CORPUS, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const rows = corpus.map((c) => record(c.name, c.text));

const runs = classifyAll();
writeFileSync(
  CLASSES,
  "# tiktoken gpt2 regex classes: first last class (hex); L=\\p{L} N=\\p{N} S=\\s, others omitted\n" +
    runs.filter((r) => r[2] !== "O").map((r) => `${hex(r[0])} ${hex(r[1])} ${r[2]}`).join("\n") + "\n",
);

// Samples: every code point below U+0300, both ends of every class run and their outer
// neighbours, and every 499th code point of the rest.
const sample = new Set();
for (let cp = 0; cp < 0x300; cp++) sample.add(cp);
for (const [a, b] of runs) for (const cp of [a - 1, a, b, b + 1]) sample.add(cp);
for (let cp = 0; cp < 0x110000; cp += 499) sample.add(cp);
const cps = [...sample].filter((cp) => cp >= 0 && cp < 0x110000 && (cp < 0xd800 || cp > 0xdfff)).sort((x, y) => x - y);
for (const cp of cps) rows.push(record("cp_" + hex(cp), codePointText(cp)));
const randText = mulberry32(2024);
for (let i = 0; i < 1500; i++) {
  const n = 1 + Math.floor(randText() * 24);
  let text = "";
  for (let j = 0; j < n; j++) text += TRICKY[Math.floor(randText() * TRICKY.length)];
  rows.push(record("rand_" + i, text));
}

writeFileSync(EXPECTED, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");

// Streaming decode reference.
const rand = mulberry32(12345);
const pick = (arr) => arr[Math.floor(rand() * arr.length)];
const fatal = new TextDecoder("utf-8", { fatal: true });
const byteTokens = [], brokenTokens = [], textTokens = [];
for (let b = 0; b < 256; b++) byteTokens.push(enc.encode_single_token(Uint8Array.of(b)));
for (let id = 0; id < 50256; id++) {
  const bytes = enc.decode_single_token_bytes(id);
  if (bytes.length < 2) continue;
  try {
    fatal.decode(bytes);
    textTokens.push(id);
  } catch {
    brokenTokens.push(id);
  }
}
const decoderRows = [];
for (let i = 0; i < 400; i++) {
  const n = 1 + Math.floor(rand() * 8);
  const ids = [];
  for (let j = 0; j < n; j++) {
    const r = rand();
    ids.push(r < 0.55 ? pick(byteTokens) : r < 0.9 ? pick(brokenTokens) : pick(textTokens));
  }
  const dec = new TextDecoder("utf-8");
  const pieces = ids.map((id) => dec.decode(enc.decode_single_token_bytes(id), { stream: true }));
  decoderRows.push({ ids, pieces, tail: dec.decode() });
}
writeFileSync(DECODER, decoderRows.map((r) => JSON.stringify(r)).join("\n") + "\n");
enc.free();
console.log(`${corpus.length} corpus cases + ${cps.length} code point cases + 1500 random cases -> ${EXPECTED}; ${runs.length} class runs -> ${CLASSES}`);
