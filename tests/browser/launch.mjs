// Shared setup of the browser tests: Debian's Chromium (/usr/bin/chromium, or CHROMIUM_PATH)
// driven by npm's playwright-core with a fresh persistent profile; never downloads a browser.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * Launches Chromium with an empty profile and returns { context, page, pageErrors, close() }.
 * Page errors are collected in pageErrors; console errors are echoed to stderr.
 * @param {{ viewport?: { width: number, height: number }, timeout?: number }} [options]
 */
export async function launchBrowser({ viewport, timeout = 30_000 } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium package ` +
      '(apt-get install chromium) or set CHROMIUM_PATH. The browser tests never download a browser.');
  }
  const { chromium } = await import('playwright-core');
  const profileDir = mkdtempSync(join(tmpdir(), 'gpt2-browser-'));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ...(viewport ? { viewport } : {}),
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(timeout);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  page.on('console', (m) => { if (m.type() === 'error') process.stderr.write(`[page] ${m.text()}\n`); });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(profileDir, { recursive: true, force: true });
  };
  return { context, page, pageErrors, close };
}
