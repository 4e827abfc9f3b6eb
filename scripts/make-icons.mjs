#!/usr/bin/env node
// make-icons.mjs - draws the demo page's app icons (web/icons/*.png, named by
// web/manifest.webmanifest) with no dependency: the shapes are computed per pixel (4x4
// supersampled), and the PNG is written with node:zlib.
//
//   node scripts/make-icons.mjs [outDir]     default outDir: web/icons
//
// The picture: three lines of white "text" and a faded fourth (the suggestion), with a yellow
// caret, on the page's accent blue. "any" icons have rounded corners and a transparent
// outside; the maskable one fills the square and keeps the drawing inside the safe circle.
// The output is byte-for-byte deterministic (tests/browser/offline.test.mjs checks the
// committed files against a fresh run).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The icons: file name, size in pixels, purpose. */
export const ICONS = [
  { file: 'icon-192.png', size: 192, maskable: false },
  { file: 'icon-512.png', size: 512, maskable: false },
  { file: 'icon-maskable-512.png', size: 512, maskable: true },
];

const BLUE = [0x35, 0x57, 0xd4];
const WHITE = [0xff, 0xff, 0xff];
const FADED = [0x9d, 0xae, 0xea];
const YELLOW = [0xff, 0xc8, 0x3d];

/** CRC-32 (IEEE) of bytes, as PNG chunks need. */
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A PNG file of an RGBA image (rgba: width*height*4 bytes). */
export function encodePng(width, height, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bits per channel
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Inside a rounded rectangle (x0, y0, x1, y1, radius r), in unit coordinates. */
function inRoundRect(x, y, x0, y0, x1, y1, r) {
  if (x < x0 || x > x1 || y < y0 || y > y1) return false;
  const cx = Math.min(Math.max(x, x0 + r), x1 - r);
  const cy = Math.min(Math.max(y, y0 + r), y1 - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

/** The colour (or null: transparent) at unit coordinates (x, y). */
function shade(x, y, maskable) {
  // Maskable icons may be cut to a circle of diameter 0.8: draw everything inside it.
  const s = maskable ? 0.72 : 1;
  const u = (x - 0.5) / s + 0.5;
  const v = (y - 0.5) / s + 0.5;
  const lines = [[0.2, 0.8], [0.2, 0.72], [0.2, 0.58]]; // white lines: [x0, x1]
  const tops = [0.26, 0.4, 0.54];
  const h = 0.075;
  for (let i = 0; i < 3; i++) {
    if (inRoundRect(u, v, lines[i][0], tops[i], lines[i][1], tops[i] + h, h / 2)) return WHITE;
  }
  if (inRoundRect(u, v, 0.61, 0.54, 0.8, 0.54 + h, h / 2)) return FADED; // the suggestion
  if (inRoundRect(u, v, 0.2, 0.68, 0.42, 0.68 + h, h / 2)) return WHITE;
  if (inRoundRect(u, v, 0.445, 0.655, 0.48, 0.775, 0.012)) return YELLOW; // the caret
  if (maskable || inRoundRect(x, y, 0.02, 0.02, 0.98, 0.98, 0.2)) return BLUE;
  return null;
}

/** The RGBA pixels of one icon, 4x4 supersampled. */
export function drawIcon(size, maskable) {
  const out = Buffer.alloc(size * size * 4);
  const n = 4;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const c = shade((px + (sx + 0.5) / n) / size, (py + (sy + 0.5) / n) / size, maskable);
          if (!c) continue;
          r += c[0]; g += c[1]; b += c[2]; a++;
        }
      }
      const o = (py * size + px) * 4;
      if (a) {
        out[o] = Math.round(r / a);
        out[o + 1] = Math.round(g / a);
        out[o + 2] = Math.round(b / a);
      }
      out[o + 3] = Math.round((a / (n * n)) * 255);
    }
  }
  return out;
}

/** Writes every icon into dir; returns the paths written. */
export function makeIcons(dir = path.join(REPO_ROOT, 'web', 'icons')) {
  mkdirSync(dir, { recursive: true });
  return ICONS.map(({ file, size, maskable }) => {
    const p = path.join(dir, file);
    writeFileSync(p, encodePng(size, size, drawIcon(size, maskable)));
    return p;
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const p of makeIcons(process.argv[2] ? path.resolve(process.argv[2]) : undefined)) console.log(p);
}
