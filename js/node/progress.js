// progress.js - a one-line progress display for model loading, used by the command-line tool
// (js/node/cli.js). Feed it load()'s progress events; on a terminal it redraws a bar in place
// (bytes loaded / total, percent, speed, time left), elsewhere it stays silent until done().
// No dependencies; works with any writable stream that has write() (and optionally columns).

/** Bytes in decimal units, the way download tools show them: 950 B, 12.3 kB, 3.3 MB, 1.2 GB. */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  if (i === 0) return `${Math.round(n)} B`;
  return `${n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

/** A duration in seconds as "0.4 s", "12 s", "3:07" or "1:02:09". */
export function formatDuration(s) {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const t = Math.round(s);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return `${h ? `${h}:` : ''}${mm}:${String(sec).padStart(2, '0')}`;
}

/**
 * Progress of one load.
 *   const bar = new ProgressBar(process.stderr, { label: 'models/' });
 *   await load(src, { onProgress: (p) => bar.update(p) });
 *   bar.done();   // "loaded models/ (4.8 MB) in 0.2 s"
 */
export class ProgressBar {
  /**
   * @param {{ write(s: string): any, isTTY?: boolean, columns?: number }} stream
   * @param {{ label?: string, live?: boolean, intervalMs?: number, now?: () => number, verbs?: [string, string] }} [options]
   *   live: redraw in place (default: stream.isTTY); intervalMs: minimum time between redraws;
   *   verbs: the words before the label while running and in the summary (default ['loading', 'loaded'])
   */
  constructor(stream, options = {}) {
    this.stream = stream;
    this.label = options.label ?? 'model';
    this.verbs = options.verbs ?? ['loading', 'loaded'];
    this.live = options.live ?? !!stream.isTTY;
    this.intervalMs = options.intervalMs ?? 100;
    this.now = options.now ?? (() => performance.now());
    this.started = this.now();
    this.lastDraw = -Infinity;
    this.loaded = 0;
    this.total = undefined;
    this.drawn = false;
    this.finished = false;
  }

  /**
   * Takes one progress event { loaded, total, skipped? } (total may be undefined; skipped:
   * bytes of loaded that were already there, e.g. a resumed download, left out of the speed).
   */
  update(event) {
    if (this.finished) return;
    this.loaded = event.loaded;
    this.total = event.total;
    this.skipped = event.skipped ?? 0;
    if (!this.live) return;
    const t = this.now();
    const complete = this.total !== undefined && this.loaded >= this.total;
    if (!complete && t - this.lastDraw < this.intervalMs) return;
    this.lastDraw = t;
    this.#draw(this.render(t));
  }

  /** The status line for the current state (without cursor control), at most columns - 1 wide. */
  render(t = this.now()) {
    const elapsed = Math.max(1e-3, (t - this.started) / 1000);
    const speed = Math.max(0, this.loaded - (this.skipped ?? 0)) / elapsed;
    const speedText = elapsed >= 0.2 ? `${formatBytes(speed)}/s` : '';
    const width = Math.max(40, Math.min(this.stream.columns || 80, 120)) - 1;
    let tail, fraction;
    if (this.total === undefined || this.total <= 0) {
      // Unknown size: bytes so far and speed; no bar, no estimate.
      tail = [formatBytes(this.loaded), speedText].filter(Boolean);
    } else {
      fraction = Math.min(1, this.loaded / this.total);
      const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
      const left = speed > 0 && fraction < 1 && elapsed >= 0.2 ? `${formatDuration((this.total - this.loaded) / speed)} left` : '';
      tail = [percent, `${formatBytes(this.loaded)} / ${formatBytes(this.total)}`, speedText, left].filter(Boolean);
    }
    // The bar's width depends on the terminal's only (no jumping as numbers change); the label
    // gives way to the numbers, and the least important numbers go last on narrow terminals.
    const MAX_TAIL = 47, MIN_LABEL = 12;
    const verb = `${this.verbs[0]} `;
    let barWidth = fraction === undefined ? 0 : Math.min(30, width - verb.length - MIN_LABEL - MAX_TAIL - 3);
    if (barWidth < 8) barWidth = 0;
    const full = Math.round((fraction ?? 0) * barWidth);
    const bar = barWidth ? ` [${'#'.repeat(full)}${'.'.repeat(barWidth - full)}]` : '';
    const parts = tail;
    let line;
    for (let n = parts.length; n >= 1; n--) {
      const t = parts.slice(0, n).join('  ');
      const room = width - verb.length - bar.length - 2 - t.length;
      line = `${verb}${shorten(this.label, Math.max(MIN_LABEL, room))}${bar}  ${t}`;
      if (line.length <= width) break;
    }
    return fit(line, width);
  }

  /** The closing summary, e.g. "loaded models/ (4.8 MB) in 0.2 s". */
  summary(t = this.now()) {
    return `${this.verbs[1]} ${this.label} (${formatBytes(this.loaded)}) in ${formatDuration((t - this.started) / 1000)}`;
  }

  /** Ends the display: replaces the bar (or, off a terminal, prints) the summary line. */
  done({ quiet = false } = {}) {
    if (this.finished) return;
    this.clear();
    this.finished = true;
    if (!quiet) this.stream.write(`${this.summary()}\n`);
  }

  /** Removes the bar from the terminal (before printing an error, or when cancelled). */
  clear() {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  /** Stops without a summary line. */
  cancel() {
    this.clear();
    this.finished = true;
  }

  #draw(line) {
    if (this.drawn && line === this.lastLine) return;
    this.stream.write(`\r\x1b[2K${line}`);
    this.lastLine = line;
    this.drawn = true;
  }
}

/** s cut in the middle to at most n characters ("http://exam…/models/"). */
function shorten(s, n) {
  if (s.length <= n) return s;
  const keep = n - 1;
  return `${s.slice(0, Math.ceil(keep / 2))}…${s.slice(s.length - Math.floor(keep / 2))}`;
}

function fit(s, width) {
  return s.length <= width ? s : `${s.slice(0, width - 1)}…`;
}
