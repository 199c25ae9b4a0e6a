/** Pure parts of the drop: option parsing, percentiles, the venue buyers pick from, progress lines. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS, UsageError, helpText, buildVenue, bucketize, chooseFromFree, chooseOrder, createProgressReporter, parseDropArgs, percentile, summarize } from '../src/index.ts';
import { seededRandom } from '../src/random.ts';

describe('options', () => {
  it('defaults: 2000 seats, a 1000-place pool, 6000 buyers, burst, 10 s holds, a timestamped report', () => {
    const { options, help } = parseDropArgs([], 3000, new Date('2027-03-01T11:00:00Z'));
    expect(help).toBe(false);
    expect(options).toMatchObject({ ...DEFAULT_OPTIONS, budgetMs: 3000, report: 'reports/drop-20270301-110000.html' });
    expect(options.seats).toBe(2000);
    expect(options.holdTtl).toBe(10);
    expect(options.portone).toBe('v1');
  });

  it('lets 200 buyers into the payment window at once per buyer process, unless --concurrency says', () => {
    expect(parseDropArgs([]).options.concurrency).toBe(200);
    expect(parseDropArgs(['--split']).options).toMatchObject({ buyerProcesses: 2, concurrency: 400 });
    expect(parseDropArgs(['--buyer-processes', '4']).options.concurrency).toBe(800);
    expect(parseDropArgs(['--split', '--concurrency', '100']).options.concurrency).toBe(100);
    expect(parseDropArgs(['--concurrency', '50', '--buyer-processes', '3']).options.concurrency).toBe(50);
    expect(helpText()).toMatch(/--concurrency <n> +buyers in the payment window at once \(all processes\) \[200 a buyer process\]/);
  });

  it('--portone picks the API and flow buyers pay through', () => {
    for (const mode of ['v1', 'v2', 'v2-manual'] as const) expect(parseDropArgs(['--portone', mode]).options.portone).toBe(mode);
  });

  it('parses every kind of option', () => {
    const { options } = parseDropArgs([
      '--seats', '10', '--pool', '0', '--arrival', 'ramp', '--ramp-seconds', '3', '--failed', '0.25', '--webhook-delay-ms', '500',
      '--api-url', 'http://127.0.0.1:3000/', '--sim-url', 'http://127.0.0.1:3100', '--no-report', '--json', '--seed', '7', '--budget-ms', '800',
    ]);
    expect(options).toMatchObject({
      seats: 10, pool: 0, arrival: 'ramp', rampSeconds: 3, failed: 0.25, webhookDelayMs: 500,
      apiUrl: 'http://127.0.0.1:3000', simUrl: 'http://127.0.0.1:3100', report: null, json: true, seed: 7, budgetMs: 800,
    });
  });

  it.each([
    [['--buyers', 'many'], '--buyers must be a whole number'],
    [['--webhook-loss', '2'], '--webhook-loss must be a number from 0 to 1'],
    [['--hold-ttl', '2'], '--hold-ttl must be from 5 to 3600'],
    [['--arrival', 'trickle'], '--arrival must be burst or ramp'],
    [['--portone', 'v3'], '--portone must be v1, v2 or v2-manual'],
    [['--seats', '0', '--pool', '0'], 'the event needs inventory'],
    [['--failed', '0.6', '--abandoned', '0.6'], 'must not exceed 1'],
    [['--api-url', 'http://127.0.0.1:3000'], '--api-url needs --sim-url'],
    [['--api-url', 'ftp://x'], '--api-url must be an http(s) URL'],
    [['--database', 'Prod DB'], '--database must be a lower-case database name'],
    [['--nope'], "Unknown option '--nope'"],
  ])('refuses %j', (args, message) => {
    expect(() => parseDropArgs(args)).toThrow(UsageError);
    expect(() => parseDropArgs(args)).toThrow(message);
  });
});

describe('stats', () => {
  it('nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 0.5)).toBe(50);
    expect(percentile(values, 0.99)).toBe(99);
    expect(summarize([5, 1, 3])).toEqual({ n: 3, p50: 3, p90: 5, p99: 5, max: 5 });
    expect(summarize([])).toEqual({ n: 0, p50: 0, p90: 0, p99: 0, max: 0 });
  });

  it('buckets answers over time, keeping empty buckets', () => {
    const buckets = bucketize([{ t: 10, latencyMs: 5, approved: true }, { t: 20, latencyMs: 7, approved: false }, { t: 1_100, latencyMs: 9, approved: true }], 500);
    expect(buckets.map((b) => [b.t, b.n, b.approved, b.refused, b.max])).toEqual([[0, 2, 1, 1, 7], [500, 0, 0, 0, 0], [1000, 1, 1, 0, 9]]);
    expect(buckets[0]!.perSecond).toBe(4);
  });
});

describe('venue', () => {
  it('lays out exactly the asked seats in rows of 50, sections of 20 rows, plus the pool', () => {
    const venue = buildVenue(2_075, 1_000);
    expect(venue.capacity).toBe(3_075);
    expect(venue.blocks.reduce((n, b) => n + b.rows * b.seats_per_row, 0)).toBe(2_075);
    expect(venue.blocks.map((b) => [b.section, b.rows, b.seats_per_row])).toEqual([['A', 20, 50], ['B', 20, 50], ['C', 1, 50], ['D', 1, 25]]);
    expect(venue.rows.reduce((n, r) => n + r.seats, 0)).toBe(2_075);
  });

  it('buyers want adjacent seats that exist, or pool places, within the per-order maximum', () => {
    const venue = buildVenue(120, 30);
    const random = seededRandom(1);
    const exists = new Set(venue.rows.flatMap((r) => Array.from({ length: r.seats }, (_, i) => `${r.section}-${r.row}-${i + 1}`)));
    let pool = 0;
    for (let i = 0; i < 500; i++) {
      const choice = chooseOrder(venue, random, 4);
      if ('items' in choice) {
        pool++;
        expect(choice.items[0]!.quantity).toBeGreaterThanOrEqual(1);
        expect(choice.items[0]!.quantity).toBeLessThanOrEqual(4);
        continue;
      }
      expect(choice.seats.length).toBeGreaterThanOrEqual(1);
      expect(choice.seats.length).toBeLessThanOrEqual(4);
      for (const seat of choice.seats) expect(exists.has(seat)).toBe(true);
      const numbers = choice.seats.map((s) => Number(s.split('-')[2]));
      expect(numbers).toEqual(numbers.map((_, j) => numbers[0]! + j));
    }
    expect(pool).toBeGreaterThan(50);
    expect(pool).toBeLessThan(200);
  });

  it('after a refusal, buyers pick only among the places the refreshed map shows free', () => {
    const random = seededRandom(2);
    const seatIds = ['B-3-7', 'B-3-8', 'C-1-2', 'C-1-9'];
    expect(chooseFromFree({ poolAvailable: 0, seatsAvailable: 0, seatIds: [] }, random, 4)).toBeNull();
    let pool = 0;
    for (let i = 0; i < 400; i++) {
      const choice = chooseFromFree({ poolAvailable: 4, seatsAvailable: 4, seatIds }, random, 3)!;
      if ('items' in choice) {
        pool++;
        expect(choice.items[0]!.quantity).toBeGreaterThanOrEqual(1);
        expect(choice.items[0]!.quantity).toBeLessThanOrEqual(3);
        continue;
      }
      expect(choice.seats.length).toBeGreaterThanOrEqual(1);
      expect(choice.seats.length).toBeLessThanOrEqual(3);
      // Free seats next to each other in id order, never a seat the map did not show.
      const at = seatIds.indexOf(choice.seats[0]!);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(choice.seats).toEqual(seatIds.slice(at, at + choice.seats.length));
    }
    // Half the free places are in the pool: about half the choices go there.
    expect(pool).toBeGreaterThan(120);
    expect(pool).toBeLessThan(280);
    // Only one place left in the pool, none in the seats: a buyer wanting more takes what is left.
    for (let i = 0; i < 20; i++) expect(chooseFromFree({ poolAvailable: 1, seatsAvailable: 0, seatIds: [] }, random, 4)).toEqual({ items: [{ pool: 'floor', quantity: 1 }] });
  });
});

describe('progress', () => {
  const state = { phase: 'buying' as const, elapsedMs: 2_500, buyers: 100, buyersDone: 40, capacity: 90, sold: 30, held: 10, available: 50, confirmsPerSecond: 120, p99Ms: 12.34, pending: [] };

  it('prints plain lines when stderr is not a terminal', () => {
    const out: string[] = [];
    const p = createProgressReporter({ write: (t) => out.push(t) > 0, isTTY: false }, { quiet: false });
    p.update(state);
    p.update({ ...state, elapsedMs: 2_600 });
    expect(out).toEqual(['drop [  2.5s] buyers 40/100, sold 30 held 10 remaining 50, 120 confirms/s, p99 12.3 ms\n']);
  });

  it('redraws one line with a sold/held/remaining bar on a terminal', () => {
    const out: string[] = [];
    const p = createProgressReporter({ write: (t) => out.push(t) > 0, isTTY: true, columns: 200 }, { quiet: false });
    p.update(state);
    p.done();
    const ESC = String.fromCharCode(27);
    expect(out[0]).toBe(`\r${ESC}[2K  2.5s ▕${'█'.repeat(8)}${'▓'.repeat(3)}${'░'.repeat(13)}▏ buyers 40/100 │ sold 30 held 10 remaining 50 │ 120 confirms/s │ p99 12.3 ms`);
    expect(out[1]).toBe(`\r${ESC}[2K`);
  });
});
