/**
 * A drop split over processes: the buyers spread over child processes, the simulator in a process of
 * its own and the API and worker through `npm start` (`--split`). Every buyer runs exactly once, the
 * merged log adds up to what Postgres and the simulator recorded, the report is complete and the
 * invariants hold; with a waiting room, every buyer's time in the queue comes back from its process.
 */
import { describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { formatTextReport, parseDropArgs } from '../src/index.ts';
import { smallDrop } from './helpers.ts';

describe('a drop split over processes', () => {
  it('--split: buyers in 3 processes, the simulator in its own, the stack through npm start; invariants hold', async () => {
    const drop = await smallDrop('split', {
      seats: 100, pool: 50, buyers: 300, concurrency: 30, buyerProcesses: 3, simProcess: true, stackProcess: true,
    }, { keepOpen: true });
    const { result } = drop;
    const { summary, invariants } = result;
    const { target } = result.open!;
    try {
      expect(invariants.ok, JSON.stringify(invariants.results.filter((r) => !r.ok))).toBe(true);
      expect(invariants.results.map((r) => [r.id, r.ok])).toEqual([[1, true], [2, true], [3, true], [4, true]]);
      expect(summary.stack).toMatch(/^API and worker through npm start \(1 API process, 1 worker process; .*simulator in a process of its own \(pid \d+\)$/);
      expect(summary.timing.settled).toBe(true);
      expect(summary.timing.buying_ms).toBeGreaterThan(0);

      // Every buyer ran, in exactly one process: each made at least one order and at most `attempts`.
      const perBuyer = await sql<{ buyer_id: string; n: string }>`
        select buyer_id, count(*) as n from orders where event_id = ${result.eventId} group by buyer_id`.execute(target.db);
      expect(perBuyer.rows.length).toBe(300);
      expect(new Set(perBuyer.rows.map((r) => r.buyer_id))).toEqual(new Set(Array.from({ length: 300 }, (_, i) => `buyer-${i + 1}`)));
      expect(Math.max(...perBuyer.rows.map((r) => Number(r.n)))).toBeLessThanOrEqual(summary.options.attempts);

      // The merged log adds up to the record: orders in Postgres, windows in the simulator's ledger.
      const ordersInPostgres = Object.values(summary.orders).reduce((a, b) => a + b, 0);
      expect(summary.buyers.orders_created).toBe(ordersInPostgres);
      expect(summary.buyers.payment_windows).toBe(summary.confirms.total);
      expect(summary.confirms.latency_ms.n).toBe(summary.confirms.total);
      expect(summary.confirms.total).toBe(summary.confirms.approved + summary.confirms.refused);
      expect(summary.inventory.sold).toBeGreaterThan(0);
      expect(summary.inventory.sold + summary.inventory.remaining).toBe(summary.inventory.capacity);
      expect(summary.payments.paid).toBeGreaterThan(0);
      expect(summary.buyers.errors).toEqual([]);

      // Where the CPU went: every process the drop started is accounted for, and the parts add up.
      const cpu = summary.cpu!;
      for (const part of ['buyers', 'simulator', 'api', 'worker', 'drop', 'redis', 'postgres'] as const) expect(cpu.seconds[part], part).toBeGreaterThan(0);
      const parts = Object.values(cpu.seconds).reduce<number>((n, v) => n + (v ?? 0), 0);
      expect(Math.abs(cpu.total_s - parts)).toBeLessThan(0.05);
      expect(cpu.ms_per_buyer).toBeCloseTo((cpu.total_s * 1000) / 300, 0);

      const text = formatTextReport(summary);
      for (const line of ['Capacity', 'Sold', 'Orders', 'Confirms', 'Payments', 'Webhooks', 'Confirm latency', 'Timing', 'CPU']) expect(text).toMatch(new RegExp(`^${line}\\s`, 'm'));
      expect(text).toMatch(/^CPU\s+[\d.]+ s, [\d.]+ ms a buyer: /m);
      for (const [name, part] of [['worker', 'worker'], ['API', 'api'], ['simulator', 'simulator'], ['buyer processes', 'buyers']] as const) {
        expect(text).toContain(`${name} ${cpu.seconds[part]!.toFixed(1)} s`);
      }
      expect(text).toContain('All invariants hold.');
    } finally {
      await target.close([result.eventId]);
      await drop.db.drop();
    }
  }, 180_000);

  it('--buyer-processes with a waiting room: every buyer\'s time in the queue comes back', async () => {
    const { result } = await smallDrop('splitq', {
      seats: 0, pool: 20, buyers: 120, maxPerOrder: 2, waitingRoom: 'fixed', admitPerSecond: 40, maxActive: 20, admissionTtl: 15,
      holdAt: 'order', reservationTtl: 5, holdTtl: 5, buyerProcesses: 2,
    });
    const { summary, invariants } = result;
    expect(invariants.ok, JSON.stringify(invariants.results.filter((r) => !r.ok))).toBe(true);
    const q = summary.queue!;
    expect(q.joined).toBe(120);
    expect(q.never_resolved).toBe(0);
    expect(q.errors).toBe(0);
    expect(q.admitted + q.told_sold_out + q.expired).toBe(120);
    expect(summary.inventory.sold).toBe(20);
    // The stack and the simulator ran in this process: their CPU is the drop process's, the buyers' their own.
    expect(summary.cpu!.seconds).toMatchObject({ simulator: 0, api: 0, worker: 0 });
    expect(summary.cpu!.seconds.buyers).toBeGreaterThan(0);
    expect(summary.cpu!.seconds.drop).toBeGreaterThan(0);
  }, 180_000);
});

describe('split options', () => {
  it('--split is --buyer-processes 2 --sim-process --stack-process; an explicit --buyer-processes wins', () => {
    const split = parseDropArgs(['--split']).options;
    expect([split.buyerProcesses, split.simProcess, split.stackProcess, split.apiProcesses, split.workerProcesses]).toEqual([2, true, true, 1, 1]);
    const four = parseDropArgs(['--split', '--buyer-processes', '4', '--api-processes', '2']).options;
    expect([four.buyerProcesses, four.apiProcesses]).toEqual([4, 2]);
    const plain = parseDropArgs([]).options;
    expect([plain.buyerProcesses, plain.simProcess, plain.stackProcess]).toEqual([1, false, false]);
  });

  it('refuses process counts that cannot apply', () => {
    expect(() => parseDropArgs(['--api-processes', '2'])).toThrow(/--api-processes and --worker-processes need --stack-process/);
    expect(() => parseDropArgs(['--stack-process', '--api-url', 'http://127.0.0.1:1', '--sim-url', 'http://127.0.0.1:2'])).toThrow(/--stack-process with --api-url/);
    expect(() => parseDropArgs(['--sim-process', '--sim-url', 'http://127.0.0.1:2'])).toThrow(/--sim-process with --sim-url/);
    expect(() => parseDropArgs(['--buyer-processes', '0'])).toThrow(/--buyer-processes must be from 1 to 64/);
  });
});
