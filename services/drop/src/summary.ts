/**
 * The numbers of a drop, in one JSON-able object (`--json` prints it; the text and HTML reports are
 * drawn from it), and the time series the HTML charts plot.
 */
import type { Ledger } from '@dropgate/portone-sim';
import type { BuyerLog, QueueRecord } from './buyers.ts';
import type { InvariantResult } from '@dropgate/invariants';
import type { DropOptions } from './options.ts';
import type { InventorySample } from './sampler.ts';
import { bucketWidth, bucketize, summarize, type LatencyBucket, type LatencySummary } from './stats.ts';
import type { CpuSeconds } from './cpu.ts';

export interface DropSummary {
  event_id: string;
  started_at: string;
  stack: string;
  options: DropOptions;
  inventory: { capacity: number; seats: number; pool: number; sold: number; held: number; remaining: number };
  buyers: {
    total: number;
    orders_created: number;
    /** Order creations refused, by code. */
    order_refusals: Record<string, number>;
    payment_windows: number;
    /** Windows opened again on the same order (after a decline or a transient refusal). */
    retries: number;
    /** Approved payments carrying each fault. */
    faults: Record<string, number>;
    errors: string[];
  };
  confirms: {
    total: number;
    approved: number;
    refused: number;
    /** Answers by code (`APPROVED` and dropgate's refusal codes, `TIMEOUT` when PortOne gave up). */
    by_code: Record<string, number>;
    /** Confirm latency as PortOne (the simulator) measured it, from its ledger. */
    latency_ms: LatencySummary & { budget: number; over_budget: number; timed_out: number };
  };
  payments: {
    /** Final status at PortOne of the payments dropgate approved. */
    paid: number;
    declined: number;
    abandoned: number;
    refunded: number;
    cancelled_at_portone: number;
    /** Reported failed by the PG, then paid. */
    failed_then_paid: number;
    amount_paid: number;
  };
  /** Final order statuses in Postgres. */
  orders: Record<string, number>;
  refunds: { count: number; amount: number; by_reason: Record<string, number> };
  webhooks: { attempts: number; delivered: number; lost: number; duplicates: number; refused: number };
  timing: {
    /** From the first buyer to the last payment window returning. */
    buying_ms: number;
    /** From the last payment to every hold ended and every payment settled. */
    settle_ms: number;
    total_ms: number;
    settled: boolean;
    /** What was still going on when the settle timeout struck. */
    pending: string[];
  };
  /**
   * CPU seconds each part used from the first buyer to the drop at rest (cpu.ts), and per buyer over
   * all of them; null when it could not be sampled. Redis and Postgres are whole servers.
   */
  cpu: { seconds: CpuSeconds; total_s: number; ms_per_buyer: number } | null;
  /** The waiting room (null without one). */
  queue: QueueSummary | null;
  /** The waiting list (null without one): buyers by how their entry ended. */
  waitlist: Record<string, number> | null;
  /**
   * Where buyers who got nothing learned it: in the queue (told sold_out), at selection (order 409
   * SOLD_OUT, hold_at "order"), or after entering card details (confirm SOLD_OUT, in the payment
   * window). Shares of buyers; `confirm_sold_out_share` is of confirms answered.
   */
  refusals: {
    in_queue: number;
    at_selection: number;
    after_card: number;
    buyers_after_card: number;
    buyers_after_card_share: number;
    confirm_sold_out_share: number;
  };
  invariants: InvariantResult[];
  ok: boolean;
  report_path: string | null;
}

export interface QueueSummary {
  mode: 'fixed' | 'dynamic';
  joined: number;
  admitted: number;
  told_sold_out: number;
  expired: number;
  /** Buyers still waiting when the drop ended (0 when everyone was told). */
  never_resolved: number;
  errors: number;
  polls: number;
  rate_limited_polls: number;
  /** Time from joining to admission, admitted buyers. */
  wait_ms: LatencySummary;
  /** Time from joining to being told sold_out. */
  sold_out_after_ms: LatencySummary;
  /** Most buyers waiting at once. */
  max_length: number;
  /** Admissions per second over the busiest second, and on average while admitting. */
  admission_rate: { peak: number; mean: number };
}

/** Queue length and admissions over time, for the HTML chart. */
export interface QueuePoint {
  t: number;
  waiting: number;
  admittedPerSecond: number;
}

export interface DropSeries {
  /** The waiting room over time (empty without one). */
  queue?: QueuePoint[];
  inventory: InventorySample[];
  latency: LatencyBucket[];
  bucketMs: number;
  budgetMs: number;
  /** ms since the start. */
  lastPaymentAt: number;
  settledAt: number;
}

export interface SummaryInputs {
  options: DropOptions;
  eventId: string;
  stack: string;
  startedAt: Date;
  capacity: { seats: number; pool: number };
  log: BuyerLog;
  /** The simulator's ledger for this event only. */
  ledger: Ledger;
  finalInventory: { available: number; held: number; sold: number };
  orders: Record<string, number>;
  refunds: { reason: string; amount: number }[];
  invariants: InvariantResult[];
  timing: { buyingMs: number; settleMs: number; totalMs: number; settled: boolean; pending: string[] };
  /** CPU seconds by part over the drop, or null. */
  cpu: CpuSeconds | null;
  reportPath: string | null;
}

function count<T>(items: readonly T[], key: (t: T) => string | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) {
    const k = key(item);
    if (k !== null) out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export function buildSummary(i: SummaryInputs): DropSummary {
  const o = i.options;
  const windows = i.log.windows;
  const byCode = count(windows, (w) => w.code);
  // Codes in a stable order: approvals first, then refusals by frequency.
  const sortedCodes = Object.fromEntries(Object.entries(byCode).sort(([a, x], [b, y]) => (a === 'APPROVED' ? -1 : b === 'APPROVED' ? 1 : y - x)));
  const approved = byCode['APPROVED'] ?? 0;
  const latencies = i.ledger.confirms.map((c) => c.latency_ms);
  const budget = o.budgetMs;

  const approvedImps = new Set(windows.filter((w) => w.code === 'APPROVED' && w.impUid).map((w) => w.impUid!));
  const apiCancelled = new Set(i.ledger.cancels.filter((c) => c.ok && c.source === 'api').map((c) => c.imp_uid));
  const consoleCancelled = new Set(i.ledger.cancels.filter((c) => c.ok && c.source === 'console').map((c) => c.imp_uid));
  const payments = { paid: 0, declined: 0, abandoned: 0, refunded: 0, cancelled_at_portone: 0, failed_then_paid: 0, amount_paid: 0 };
  const ftp = new Set(windows.filter((w) => w.outcome === 'failed_then_paid').map((w) => w.impUid));
  for (const p of i.ledger.payments) {
    if (!approvedImps.has(p.imp_uid) && p.paid_at === 0) continue;
    if (ftp.has(p.imp_uid) && p.paid_at > 0) payments.failed_then_paid++;
    if (p.status === 'paid' && p.cancel_amount === 0) {
      payments.paid++;
      payments.amount_paid += p.amount;
    } else if (p.status === 'cancelled' && consoleCancelled.has(p.imp_uid)) payments.cancelled_at_portone++;
    else if (p.status === 'cancelled' && apiCancelled.has(p.imp_uid)) payments.refunded++;
    else if (p.status === 'failed') payments.declined++;
    else if (p.status === 'ready') payments.abandoned++;
  }

  const webhooks = { attempts: 0, delivered: 0, lost: 0, duplicates: 0, refused: 0 };
  for (const w of i.ledger.webhooks) {
    if (w.lost) {
      webhooks.lost++;
      continue;
    }
    webhooks.attempts++;
    if (w.delivered) webhooks.delivered++;
    else webhooks.refused++;
    if (w.copy > 0 && w.attempt === 1) webhooks.duplicates++;
  }

  const refundsByReason = count(i.refunds, (r) => r.reason);
  const confirmSoldOut = byCode['SOLD_OUT'] ?? 0;
  const buyersAfterCard = new Set(windows.filter((w) => w.code === 'SOLD_OUT').map((w) => w.merchantUid)).size;
  const queue = o.waitingRoom === null ? null : queueSummary(o.waitingRoom, i.log.queue);
  return {
    event_id: i.eventId,
    started_at: i.startedAt.toISOString(),
    stack: i.stack,
    options: o,
    inventory: {
      capacity: i.capacity.seats + i.capacity.pool,
      seats: i.capacity.seats,
      pool: i.capacity.pool,
      sold: i.finalInventory.sold,
      held: i.finalInventory.held,
      remaining: i.finalInventory.available,
    },
    buyers: {
      total: o.buyers,
      orders_created: i.log.ordersCreated,
      order_refusals: i.log.orderRefusals,
      payment_windows: windows.length,
      retries: windows.filter((w) => w.retry).length,
      faults: i.log.faults,
      errors: i.log.errors,
    },
    confirms: {
      total: windows.length,
      approved,
      refused: windows.length - approved,
      by_code: sortedCodes,
      latency_ms: {
        ...summarize(latencies),
        budget,
        over_budget: latencies.filter((l) => l > budget).length,
        timed_out: i.ledger.confirms.filter((c) => c.timed_out).length,
      },
    },
    payments,
    orders: i.orders,
    refunds: { count: i.refunds.length, amount: i.refunds.reduce((n, r) => n + r.amount, 0), by_reason: refundsByReason },
    webhooks,
    timing: {
      buying_ms: Math.round(i.timing.buyingMs),
      settle_ms: Math.round(i.timing.settleMs),
      total_ms: Math.round(i.timing.totalMs),
      settled: i.timing.settled,
      pending: i.timing.pending,
    },
    cpu: cpuSummary(i.cpu, o.buyers),
    queue,
    waitlist: o.waitlist ? i.log.waitlist : null,
    refusals: {
      in_queue: queue?.told_sold_out ?? 0,
      at_selection: i.log.orderRefusals['SOLD_OUT'] ?? 0,
      after_card: confirmSoldOut,
      buyers_after_card: buyersAfterCard,
      buyers_after_card_share: o.buyers > 0 ? buyersAfterCard / o.buyers : 0,
      confirm_sold_out_share: windows.length > 0 ? confirmSoldOut / windows.length : 0,
    },
    invariants: i.invariants,
    ok: i.invariants.every((r) => r.ok),
    report_path: i.reportPath,
  };
}

/** Confirm latency and answers over time (from the ledger), bucketed for the charts. */
export function latencySeries(ledger: Ledger, wallStartMs: number): { buckets: LatencyBucket[]; width: number } {
  const samples = ledger.confirms.map((c) => ({ t: Math.max(0, Date.parse(c.at) - wallStartMs), latencyMs: c.latency_ms, approved: c.http_status === 200 }));
  const span = samples.reduce((m, s) => Math.max(m, s.t), 0);
  const width = bucketWidth(span);
  return { buckets: bucketize(samples, width), width };
}

function queueSummary(mode: 'fixed' | 'dynamic', records: readonly QueueRecord[]): QueueSummary {
  const admitted = records.filter((r) => r.state === 'admitted');
  const soldOut = records.filter((r) => r.state === 'sold_out');
  const series = queueSeries(records);
  const admitting = series.filter((p) => p.admittedPerSecond > 0);
  return {
    mode,
    joined: records.length,
    admitted: admitted.length,
    told_sold_out: soldOut.length,
    expired: records.filter((r) => r.state === 'expired').length,
    never_resolved: records.filter((r) => r.state === 'waiting').length,
    errors: records.filter((r) => r.state === 'error').length,
    polls: records.reduce((n, r) => n + r.polls, 0),
    rate_limited_polls: records.reduce((n, r) => n + r.limited, 0),
    wait_ms: summarize(admitted.map((r) => r.resolvedAt! - r.joinedAt)),
    sold_out_after_ms: summarize(soldOut.map((r) => r.resolvedAt! - r.joinedAt)),
    max_length: series.reduce((m, p) => Math.max(m, p.waiting), 0),
    admission_rate: {
      peak: admitting.reduce((m, p) => Math.max(m, p.admittedPerSecond), 0),
      mean: admitting.length ? admitting.reduce((n, p) => n + p.admittedPerSecond, 0) / admitting.length : 0,
    },
  };
}

/** Buyers waiting and admitted per second, second by second, from the buyers' own records. */
export function queueSeries(records: readonly QueueRecord[]): QueuePoint[] {
  if (records.length === 0) return [];
  const end = records.reduce((m, r) => Math.max(m, r.resolvedAt ?? r.joinedAt), 0);
  const seconds = Math.floor(end / 1000) + 1;
  const delta = new Array<number>(seconds + 1).fill(0);
  const admits = new Array<number>(seconds).fill(0);
  for (const r of records) {
    delta[Math.floor(r.joinedAt / 1000)]!++;
    if (r.resolvedAt !== null) delta[Math.floor(r.resolvedAt / 1000)]!--;
    if (r.state === 'admitted') admits[Math.floor(r.resolvedAt! / 1000)]!++;
  }
  const out: QueuePoint[] = [];
  let waiting = 0;
  for (let sec = 0; sec < seconds; sec++) {
    waiting += delta[sec]!;
    out.push({ t: sec * 1000, waiting, admittedPerSecond: admits[sec]! });
  }
  return out;
}

function cpuSummary(cpu: CpuSeconds | null, buyers: number): DropSummary['cpu'] {
  if (cpu === null) return null;
  const round = (n: number) => Math.round(n * 100) / 100;
  const seconds = {
    drop: round(cpu.drop), buyers: round(cpu.buyers), simulator: round(cpu.simulator), api: round(cpu.api), worker: round(cpu.worker),
    redis: cpu.redis === null ? null : round(cpu.redis), postgres: cpu.postgres === null ? null : round(cpu.postgres),
  };
  const total = cpu.drop + cpu.buyers + cpu.simulator + cpu.api + cpu.worker + (cpu.redis ?? 0) + (cpu.postgres ?? 0);
  return { seconds, total_s: round(total), ms_per_buyer: buyers > 0 ? round((total * 1000) / buyers) : 0 };
}
