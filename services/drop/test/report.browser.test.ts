/**
 * The HTML report of a real (small) drop, opened in headless Chromium: every chart renders with data
 * (non-empty paths, points and bars with a size on the page), the latency chart has its budget line,
 * nothing is fetched from anywhere, and a screenshot lands in the OS temp dir.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { renderHtmlReport } from '../src/index.ts';
import { smallDrop, type TestDrop } from './helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let drop: TestDrop;
let dir: string;
let file: string;
let browser: Browser | undefined;
let page: Page;
const requests: string[] = [];
const errors: string[] = [];

beforeAll(async () => {
  // Fail, not skip: a report nobody can see rendered is not tested.
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM}: apt-get install chromium`);
  drop = await smallDrop('report', { failed: 0.1, abandoned: 0.1, buyers: 200 });
  dir = await mkdtemp(join(tmpdir(), 'dropgate-report-'));
  file = join(dir, 'drop.html');
  await writeFile(file, renderHtmlReport(drop.result.summary, drop.result.series));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`file://${file}`, { waitUntil: 'load' });
});

afterAll(async () => {
  await browser?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Width and height of the first element matching `selector` as laid out on the page. */
async function box(selector: string): Promise<{ width: number; height: number }> {
  const b = await page.locator(selector).first().boundingBox();
  return { width: b?.width ?? 0, height: b?.height ?? 0 };
}

describe('the HTML report in Chromium', () => {
  it('is self-contained: the page loads nothing but itself, without errors', () => {
    expect(requests).toEqual([`file://${file}`]);
    expect(errors).toEqual([]);
  });

  it('draws confirm latency percentiles over time with the budget line', async () => {
    const chart = 'svg[data-chart="latency"]';
    for (const key of ['p50', 'p90', 'p99', 'max']) {
      const d = (await page.getAttribute(`${chart} path.series.${key}`, 'd')) ?? '';
      expect(d, key).toMatch(/^M[\d.]+,[\d.]+/);
      expect((await box(`${chart} path.series.${key}`)).width, key).toBeGreaterThan(0);
    }
    expect(await page.locator(`${chart} circle.point.p99`).count()).toBeGreaterThan(0);
    const budget = await page.locator(`${chart} line.budget`).boundingBox();
    expect(budget?.width ?? 0).toBeGreaterThan(500);
    expect(await page.locator(`${chart} .budget-label`).textContent()).toBe('budget 3,000 ms');
  });

  it('draws confirm answers per second', async () => {
    const bars = page.locator('svg[data-chart="throughput"] rect.bar.approved');
    expect(await bars.count()).toBeGreaterThan(0);
    const heights = await bars.evaluateAll((els) => els.map((e) => Number(e.getAttribute('height'))));
    expect(Math.max(...heights)).toBeGreaterThan(0);
  });

  it('draws inventory depletion: sold, held and available areas', async () => {
    for (const cls of ['sold', 'held', 'available']) {
      const d = (await page.getAttribute(`svg[data-chart="inventory"] path.area.${cls}`, 'd')) ?? '';
      expect(d.split(/[ML]/).length, cls).toBeGreaterThan(3);
    }
    const sold = await box('svg[data-chart="inventory"] path.area.sold');
    expect(sold.width).toBeGreaterThan(100);
    expect(sold.height).toBeGreaterThan(10);
    expect(await page.locator('svg[data-chart="inventory"] .marker.settled').count()).toBe(1);
  });

  it('draws outcomes: answers by code and payment outcomes, matching the summary', async () => {
    const s = drop.result.summary;
    const approved = page.locator('svg[data-chart="outcomes"] g.outcome[data-label="APPROVED"]');
    expect(Number(await approved.getAttribute('data-value'))).toBe(s.confirms.approved);
    expect((await box('svg[data-chart="outcomes"] g.outcome[data-label="APPROVED"] rect.bar')).width).toBeGreaterThan(0);
    const paid = page.locator('svg[data-chart="outcomes"] g.outcome[data-label="paid"]').first();
    expect(Number(await paid.getAttribute('data-value'))).toBe(s.payments.paid);
    expect(s.payments.paid).toBeGreaterThan(0);
  });

  it('shows the invariants and takes a screenshot', async () => {
    expect(await page.locator('li[data-invariant][data-ok="true"]').count()).toBe(4);
    const shot = join(tmpdir(), `dropgate-drop-report-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    expect(existsSync(shot)).toBe(true);
  });
});
