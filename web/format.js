// format.js - words and numbers shown by more than one part of the page.

/** "1 token", "2 tokens": n and the word, plural unless n is 1 (word + 's', or the plural given). */
export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}

/** A probability (as a natural-log probability) as a percentage with sensible digits. */
export function percent(logprob) {
  const p = Math.exp(logprob) * 100;
  return p >= 10 ? `${p.toFixed(0)}%` : p >= 0.1 ? `${p.toFixed(1)}%` : p >= 0.001 ? `${p.toFixed(3)}%` : `${p.toExponential(1)}%`;
}

/** A byte count in decimal units: "812 B", "14.5 MB", "3.8 GB". */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return '?';
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}
