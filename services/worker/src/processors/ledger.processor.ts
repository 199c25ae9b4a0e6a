/**
 * The ledger sweep: PortOne's lists of the store's paid (and cancelled) payments, read against the record.
 *
 * Everything else learns of a payment from a confirm (its hold's verification and expiry ask PortOne)
 * or a webhook. A payment made without a confirm (a PG that cannot confirm, a browser that left
 * confirm_url out, a V1 payment for a V2 order) whose only webhook is lost (V1 sends one by default)
 * would otherwise never be found: PortOne keeps the money, the order stays pending or paid by another
 * payment, and nobody issues tickets or refunds it (attack round 20A).
 *
 * So once a LEDGER_SWEEP_INTERVAL_MS, one worker at a time, pages through the payments PortOne says
 * were paid (V1 `GET /payments/status/paid`, by paid time; V2 `GET /payments`, by the time the status
 * last changed, PAID, PARTIAL_CANCELLED and CANCELLED) and, on V1, those cancelled in full (`GET
 * /payments/status/cancelled`, by cancel time: V1's paid list shows a payment only while it is paid,
 * by its paid time, so a ticketed payment cancelled at PortOne's console whose webhook was lost was
 * never seen again: tickets without money) since the last sweep (less LEDGER_OVERLAP_MS, so one paid
 * just as a sweep listed is not missed) up to LEDGER_SETTLE_DELAY_MS ago (a payment paid in the last
 * minute, by default, is its webhook's to settle: the sweep would only ask PortOne about it twice). A
 * payment of an order of dropgate's that the record does not have settled is settled as a webhook's
 * would be (a `ledger` outcome job: PortOne asked again under the order's lock, then tickets or a
 * refund, or a cancel's tickets voided); one of an order dropgate does not have is counted
 * (`unknown_order`) and left alone: the store may sell other things.
 *
 * How far each list (V1 paid, V1 cancelled, V2) was swept lives in Redis beside the queues, each on its
 * own time axis; when it is missing (first run, Redis lost it) the sweep starts LEDGER_LOOKBACK_MS
 * back. Pages are asked by time (see sweepListing). A sweep reads at most LEDGER_PAGES_PER_SWEEP pages
 * of each list; the rest is the next sweep's, from the instant where it
 * stopped. One instant must fit in half a sweep's pages (10,000 payments paid in one second, on V1;
 * V2 lists by the millisecond), or the cursor stays at it. Costs one PortOne call per hundred payments paid (those of the overlap read twice), where
 * asking about every order would cost one per order.
 */
import { orders as ordersRepo } from '@dropgate/db';
import { eventIdOf } from '@dropgate/domain';
import { jobIds, type PaymentOutcomeJob } from '@dropgate/jobs';
import { firstListPage, type PortOneApi, type PortOnePayment } from '@dropgate/portone';
import type { WorkerContext } from '../context.ts';

/** Each sweep reads again this much of what the last one read. */
export const LEDGER_OVERLAP_MS = 2 * 60_000;
/** Where a sweep starts when nothing says how far the last one went. */
export const LEDGER_LOOKBACK_MS = 24 * 3_600_000;
/** Pages (of 100 payments) one sweep reads at most per listing. */
export const LEDGER_PAGES_PER_SWEEP = 200;

export interface LedgerSweep {
  api: PortOneApi;
  /** Which of PortOne's lists was read (its cursor's name). */
  listing: LedgerListingKey;
  /** The window read (epoch ms). */
  from: number;
  to: number;
  listed: number;
  /** Payments of dropgate's orders the record did not have: an outcome job each. */
  queued: string[];
  /** Paid payments naming no order of dropgate's. */
  unknownOrders: number;
  /** How far the sweep got (the next one starts there: less the overlap when it read to the end). */
  sweptUntil: number;
}

/** The APIs dropgate has credentials for (the V1 client without them would only be refused). */
export function configuredApis(ctx: WorkerContext): PortOneApi[] {
  const apis: PortOneApi[] = [];
  if (ctx.config.portone.impKey !== undefined) apis.push('v1');
  if (ctx.config.portone.v2ApiSecret !== undefined) apis.push('v2');
  return apis;
}

/** PortOne's lists the sweep reads, each with a cursor of its own (its field in the state hash). */
export type LedgerListingKey = 'v1' | 'v1:cancelled' | 'v2';

interface LedgerListing {
  api: PortOneApi;
  key: LedgerListingKey;
  /** One page of the list between two instants (epoch ms), each payment with the time it is listed by. */
  list(fromMs: number, toMs: number, page: number): Promise<{ payments: { payment: PortOnePayment; at: number }[]; next: number | null }>;
}

/**
 * The lists each configured API is read from. V1 lists a payment as paid by its paid time and as
 * cancelled by its cancel time, two axes that cannot share a cursor: a payment cancelled at any time
 * after it was paid is read by the cancelled list's sweep over its cancel time. (Called through
 * `ctx.portone` at each page, not bound once.)
 */
function listingsOf(ctx: WorkerContext): LedgerListing[] {
  const listings: LedgerListing[] = [];
  for (const api of configuredApis(ctx)) {
    listings.push({ api, key: api, list: (fromMs, toMs, page) => ctx.portone.listPaidPayments(api, fromMs, toMs, page) });
    if (api === 'v1') listings.push({ api, key: 'v1:cancelled', list: (fromMs, toMs, page) => ctx.portone.listV1CancelledPayments(fromMs, toMs, page) });
  }
  return listings;
}

/** What `dropgate_ledger_payments_total` counts a listed payment as (its `result` label). */
const LEDGER_RESULTS = ['known', 'queued', 'unknown_order'] as const;

/** Every series the sweep counts exists from the start (at 0), so its alert's increase() sees the first one. */
export function countLedgerFromZero(ctx: WorkerContext): void {
  for (const api of configuredApis(ctx)) for (const result of LEDGER_RESULTS) ctx.metrics.ledgerPayments.inc({ api, result }, 0);
}

/** Beside the queues (their prefix: a test's own, else QUEUE_PREFIX). */
const stateKey = (ctx: WorkerContext) => `${ctx.queues.payments.opts.prefix}:ledger`;

/**
 * One sweep of every list of every configured API (see the module comment). A list that fails does
 * not keep the others from being read; the first failure is thrown after all were tried.
 */
export async function sweepLedger(ctx: WorkerContext, opts: { settleDelayMs?: number; pagesPerSweep?: number } = {}): Promise<LedgerSweep[]> {
  const sweeps: LedgerSweep[] = [];
  let failure: unknown = null;
  for (const listing of listingsOf(ctx)) {
    try {
      sweeps.push(await sweepListing(ctx, listing, opts.settleDelayMs ?? ctx.config.ledgerSettleDelayMs, opts.pagesPerSweep ?? LEDGER_PAGES_PER_SWEEP));
    } catch (error) {
      ctx.log.warn({ err: error, api: listing.api, listing: listing.key }, 'the ledger sweep could not read PortOne\'s list of payments');
      failure ??= error;
    }
  }
  if (failure !== null) throw failure;
  return sweeps;
}

/**
 * Reads the window of one list. Pages are asked by time, not by number (keyset): each request starts
 * at the time of the last payment read (those read already at that instant are skipped), so a
 * payment leaving the list meanwhile (refunded: the sweep's own jobs refund some) cannot shift one
 * past the sweep unread (attack round 21A), and a window larger than a sweep's pages is gone on from
 * where it stopped, not from its overlap, which a steady stream of payments would re-read for good
 * (attack round 21A: 20,000 payments in two minutes stopped the cursor). A page number is asked only
 * when a whole page shares one instant.
 */
async function sweepListing(ctx: WorkerContext, listing: LedgerListing, settleDelayMs: number, pagesPerSweep: number): Promise<LedgerSweep> {
  const { api, key } = listing;
  const now = ctx.clock.now();
  const [savedAt, savedMore] = await ctx.redis.hmget(stateKey(ctx), key, `${key}:more`);
  const to = now - settleDelayMs;
  const saved = Number(savedAt);
  // Never ahead of this window's end (a cursor saved under a clock that ran ahead would hide the time
  // up to it: attack round 21A).
  const last = Number.isFinite(saved) && saved > 0 ? Math.min(saved, to) : null;
  // Cut short last time: on from the instant it stopped at (read again from its first page: payments
  // refunded since would have shifted a saved page number past some, attack round 22). Done: again
  // from a little before where it ended, for payments PortOne listed late.
  const from = last === null ? now - LEDGER_LOOKBACK_MS : savedMore === '1' ? last : Math.min(last - LEDGER_OVERLAP_MS, to);
  const sweep: LedgerSweep = { api, listing: key, from, to, listed: 0, queued: [], unknownOrders: 0, sweptUntil: from };
  const seen = new Set<string>();
  const first = firstListPage(api);
  // The next request: from instant `at`, page `page`. Page numbers are used only while a whole page
  // shares `at`; an instant paged through by number is read again from its first page until a pass
  // finds nothing new (a payment refunded meanwhile shifts the later ones onto pages already read).
  let at = from;
  let page: number | null = first;
  let paged = false;
  let found = -1; // fresh payments found in the current pass over `at` (-1: not reading it again)
  for (let pages = 0; page !== null && pages < pagesPerSweep; pages++) {
    const listed: { payments: { payment: PortOnePayment; at: number }[]; next: number | null } = await listing.list(at, to, page);
    const fresh = listed.payments.filter((p) => !seen.has(p.payment.imp_uid));
    for (const p of fresh) seen.add(p.payment.imp_uid);
    sweep.listed += fresh.length;
    if (found >= 0) found += fresh.length;
    await settleUnknown(ctx, api, fresh.map((p) => p.payment), sweep);
    const latest = listed.payments.reduce((m, p) => Math.max(m, p.at), at);
    if (listed.next !== null && latest <= at) {
      page = listed.next;
      paged = true;
      continue;
    }
    // Instant `at` is read to its end.
    if (paged && found !== 0) {
      found = 0;
      page = first;
      continue;
    }
    paged = false;
    found = -1;
    if (listed.next === null) {
      page = null;
      break;
    }
    at = latest;
    page = first;
  }
  // Read to the end: the window is done. Cut short: the next sweep goes on from the instant it was at.
  const more = page !== null;
  sweep.sweptUntil = more ? at : to;
  await ctx.redis.hset(stateKey(ctx), key, String(sweep.sweptUntil), `${key}:more`, more ? '1' : '0');
  if (sweep.queued.length > 0 || sweep.unknownOrders > 0) {
    ctx.log.warn({ api, listing: key, queued: sweep.queued.length, unknownOrders: sweep.unknownOrders }, 'PortOne lists payments the record does not have settled');
  }
  return sweep;
}

/** Queues an outcome job for each paid or cancelled payment of `payments` the record lacks (see the module comment). */
async function settleUnknown(ctx: WorkerContext, api: PortOneApi, payments: readonly PortOnePayment[], sweep: LedgerSweep): Promise<void> {
  // Paid, and (V2's list and V1's cancelled list) cancelled in full: one the record still has paid
  // holds tickets without money (its cancel webhook lost: attack round 26A).
  const ours = payments.filter((p) => (p.status === 'paid' || p.status === 'cancelled') && eventIdOf(p.merchant_uid) !== null);
  sweep.unknownOrders += payments.length - ours.length;
  ctx.metrics.ledgerPayments.inc({ api, result: 'unknown_order' }, payments.length - ours.length);
  const { orders, recorded } = await ordersRepo.ledgerKnown(ctx.db, ours.map((p) => p.merchant_uid), ours.map((p) => p.imp_uid));
  const jobs = [];
  for (const p of ours) {
    const eventId = orders.get(p.merchant_uid);
    if (eventId === undefined) {
      sweep.unknownOrders++;
      ctx.metrics.ledgerPayments.inc({ api, result: 'unknown_order' });
      continue;
    }
    // Settled only if the record has it as PortOne lists it: paid, with the same amount cancelled. A
    // payment partly cancelled at the console since (its webhook lost) still owes a refund and its
    // tickets' voiding (attack round 21A).
    const row = recorded.get(p.imp_uid);
    const settled = p.status === 'cancelled'
      // Cancelled: nothing to settle unless the record still has it paid (its money and tickets kept).
      ? row?.status !== 'paid'
      : row !== undefined && row.status === 'paid' && row.cancelAmount === p.cancel_amount;
    if (settled) {
      ctx.metrics.ledgerPayments.inc({ api, result: 'known' });
      continue;
    }
    ctx.metrics.ledgerPayments.inc({ api, result: 'queued' });
    sweep.queued.push(p.imp_uid);
    const data: PaymentOutcomeJob = { eventId, merchantUid: p.merchant_uid, impUid: p.imp_uid, hint: p.status, source: 'ledger', receivedAt: Date.now() };
    // One job per state PortOne lists the payment in: a job for its paid state completed within the
    // hour (kept that long) must not swallow the one for its cancel.
    const state = p.status === 'paid' && p.cancel_amount === 0 ? undefined : `${p.status}-${p.cancel_amount}`;
    jobs.push({ name: 'ledger', data, opts: { jobId: jobIds.ledgerPayment(p.merchant_uid, p.imp_uid, state) } });
  }
  if (jobs.length > 0) await ctx.queues.payments.addBulk(jobs);
}
