/**
 * The buyers of a drop. With a waiting room, each one first joins the event's queue and polls it until
 * admitted (or told sold_out). Each one creates an order on the storefront (`POST /events/:id/orders`), then
 * opens PortOne's payment window through the simulator, which plays the buyer and the PG, with the
 * faults asked for:
 *
 * - `--portone v1` (`POST /sim/v1/payments`): PortOne calls dropgate's confirm_url, then the payment
 *   is paid, failed or abandoned, and the webhook goes to notice_url;
 * - `--portone v2` (`POST /sim/v2/payments`): the same with V2's signed confirm call and webhooks;
 * - `--portone v2-manual`: the window returns a paymentToken (or the buyer abandons it), the buyer's
 *   browser posts it to `/portone/v2/manual-confirm`, and dropgate has PortOne approve it.
 *
 * A buyer whose seats are gone picks others (up to `attempts` orders); a buyer whose card was declined
 * may pay again on the same order.
 */
import type { Faults, PaymentOutcome, PaymentWindowResult, V2PaymentWindowResult } from '@dropgate/portone-sim';
import type { DropOptions } from './options.ts';
import { jsonRequest, type JsonAnswer } from './http.ts';
import { seededRandom, type Random } from './random.ts';
import { POOL_ID, chooseFromFree, chooseOrder, type OrderChoice, type Venue } from './venue.ts';
import { WAITLIST_ENTRY_MAX_PLACES, signBuyerToken } from '@dropgate/domain';

/** A webhook held back for reordering is delivered at the latest this long after it was due. */
export const REORDER_MAX_HOLD_MS = 1_000;

/** Refusals a buyer answers by clicking "pay" again on the same order. */
const TRANSIENT_REFUSALS = new Set(['NOT_READY', 'OVERLOADED', 'DEADLINE', 'TIMEOUT', 'NO_ANSWER', 'PORTONE_UNAVAILABLE', 'CONFIRM_IN_PROGRESS', 'PAYMENT_UNCHECKED']);

/** One payment window, as the buyer saw it come back. */
export interface PaymentWindowRecord {
  /** When the window returned, ms since the drop started. */
  t: number;
  merchantUid: string;
  impUid: string | null;
  /** `APPROVED`, dropgate's refusal code, `TIMEOUT` / `NO_ANSWER` (no answer in PortOne's 5 s), or `SIM_<status>`. */
  code: string;
  /** Confirm latency as the simulator measured it (PortOne's view). */
  latencyMs: number | null;
  /** What the buyer and the PG were going to do once approved. */
  outcome: PaymentOutcome | 'failed_then_paid' | null;
  /** The payment's status when the window returned. */
  status: string | null;
  /** A second payment of the same order (after a decline or a transient refusal). */
  retry: boolean;
}

/** One buyer's time in the waiting room. */
export interface QueueRecord {
  /** ms since the drop started. */
  joinedAt: number;
  /** When the buyer was admitted or told sold_out / expired (null: never resolved). */
  resolvedAt: number | null;
  state: 'waiting' | 'admitted' | 'sold_out' | 'expired' | 'error';
  polls: number;
  /** Polls answered 429 (the buyer polled too fast). */
  limited: number;
}

export interface BuyerLog {
  /** Buyers on the waiting list, by how their entry ended (joined, offered, paid, expired, sold_out, waiting, error). */
  waitlist: Record<string, number>;
  /** One record per buyer who joined the waiting room. */
  queue: QueueRecord[];
  buyersStarted: number;
  buyersDone: number;
  ordersCreated: number;
  /** Order creations refused, by error code (after retries of 503s). */
  orderRefusals: Record<string, number>;
  windows: PaymentWindowRecord[];
  /** Payments cancelled on PortOne's side after they were paid. */
  consoleCancels: number;
  /** Approved payments carrying each fault. */
  faults: Record<string, number>;
  /** The first few unexpected errors. */
  errors: string[];
  /** ms since the start when the last payment window returned. */
  lastWindowAt: number;
}

export function emptyBuyerLog(): BuyerLog {
  return { waitlist: {}, queue: [], buyersStarted: 0, buyersDone: 0, ordersCreated: 0, orderRefusals: {}, windows: [], consoleCancels: 0, faults: {}, errors: [], lastWindowAt: 0 };
}

export interface BuyersContext {
  apiUrl: string;
  simUrl: string;
  eventId: string;
  venue: Venue;
  options: DropOptions;
  /** performance.now() when the drop started. */
  t0: number;
  log: BuyerLog;
  /**
   * This process's share of the buyers when they are spread over several processes: buyers `i` with
   * `i mod count = index`, and this share of `concurrency` (and of the waiting room's connections).
   * Default: every buyer.
   */
  share?: { index: number; count: number };
  /** The storefront's BUYER_TOKEN_SECRET: every order and join carries the buyer's token (see signed). */
  buyerSecret?: string;
}

/** The buyer's `buyer_token` when the stack wants signed buyers (a storefront signs its logged-in buyer). */
function signed(ctx: BuyersContext, buyerId: string): { buyer_token?: string } {
  return ctx.buyerSecret === undefined ? {} : { buyer_token: signBuyerToken(ctx.buyerSecret, buyerId, Date.now() + 6 * 3_600_000) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Requests in flight from the waiting-room phase at most: tens of thousands of waiting buyers share
 * this many connections (and this process's sockets). Waiting requests go in the order of their
 * buyer's last known place in the queue (joins first): in a real rush every browser has its own
 * connection, so a buyer at the front is not held up behind the polls of the buyers far back; here
 * they share a pool, and this keeps that pool from reordering the queue.
 */
const QUEUE_HTTP_SLOTS = 256;
/** Waiting requests by priority bucket (100 places per bucket). */
const slotWaiters: (() => void)[][] = [];
let slotsFree = QUEUE_HTTP_SLOTS;
/** A process running a share of the buyers gets that share of the slots (before any buyer starts). */
function shareQueueSlots(count: number): void {
  slotsFree = Math.max(1, Math.ceil(QUEUE_HTTP_SLOTS / count));
}
let lowestBucket = 0;
async function queueSlot<T>(priority: number, fn: () => Promise<T>): Promise<T> {
  if (slotsFree === 0) {
    const bucket = Math.max(0, Math.floor(priority / 100));
    await new Promise<void>((r) => {
      (slotWaiters[bucket] ??= []).push(r);
      lowestBucket = Math.min(lowestBucket, bucket);
    });
  } else slotsFree--;
  try {
    return await fn();
  } finally {
    let next: (() => void) | undefined;
    while (lowestBucket < slotWaiters.length && !(next = slotWaiters[lowestBucket]?.shift())) lowestBucket++;
    if (next) next();
    else {
      slotsFree++;
      lowestBucket = 0;
    }
  }
}

function getJson(url: string): Promise<JsonAnswer> {
  return jsonRequest('GET', url);
}

function postJson(url: string, body: unknown): Promise<JsonAnswer> {
  return jsonRequest('POST', url, body);
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function note(log: BuyerLog, message: string): void {
  if (log.errors.length < 20) log.errors.push(message);
}

/** Each buyer has its own random stream: the same seed gives the same buyers, whatever the timing. */
function buyerRandom(seed: number, i: number): Random {
  return seededRandom((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
}

function pickOutcome(o: DropOptions, random: Random): PaymentOutcome {
  const r = random();
  if (r < o.failed) return 'failed';
  if (r < o.failed + o.abandoned) return 'abandoned';
  return 'paid';
}

interface Order {
  merchant_uid: string;
  amount: number;
  /** The buyer's proof of the order (V2 manual confirmation sends it). */
  order_token: string;
}

/**
 * The refreshed seat map a buyer looks at after a refusal (the event's availability and a page of its
 * available seats) and what they pick from it; null when it shows nothing free, or cannot be read.
 */
async function chooseFromMap(ctx: BuyersContext, random: Random): Promise<OrderChoice | null> {
  try {
    const ev = await getJson(`${ctx.apiUrl}/events/${ctx.eventId}`);
    const a = ev.body?.['availability'] as { seats?: { available: number }; pools?: { id: string; available: number }[] } | undefined;
    if (ev.status !== 200 || !a) return null;
    const poolAvailable = a.pools?.find((p) => p.id === POOL_ID)?.available ?? 0;
    const seatsAvailable = a.seats?.available ?? 0;
    let seatIds: string[] = [];
    if (seatsAvailable > 0) {
      const page = await getJson(`${ctx.apiUrl}/events/${ctx.eventId}/seats?status=available&limit=100`);
      seatIds = page.status === 200 ? ((page.body?.['seats'] as { id: string }[] | undefined) ?? []).map((x) => x.id) : [];
    }
    return chooseFromFree({ poolAvailable, seatsAvailable, seatIds }, random, ctx.options.maxPerOrder);
  } catch (error) {
    note(ctx.log, `seat map: ${(error as Error).message}`);
    return null;
  }
}

/**
 * Tries a buyer makes when the storefront cannot be reached (connection refused or reset: an API
 * process restarting, a load balancer between two of them): a buyer refreshes a page that failed to
 * load, several times over a few seconds, before giving up (until 2026-12-02 the first network error
 * ended the buyer, so a drop with an API restart measured little after it).
 */
export const ORDER_NETWORK_TRIES = 8;

/**
 * An order for `choice`, or the code it was refused with (after retries of 503s and of network
 * errors). A retry after a network error may make a second order when the first one's answer was what
 * got lost, as a buyer's refresh would: that one is never paid and lapses. The waits between tries
 * draw on Math.random, not the buyer's seeded stream, so what a buyer chooses after them does not
 * depend on how many tries the timing took.
 */
export async function createOrder(ctx: BuyersContext, buyerId: string, admission: string | null, choice: OrderChoice): Promise<Order | string> {
  let networkErrors = 0;
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await postJson(`${ctx.apiUrl}/events/${ctx.eventId}/orders`, {
        buyer_id: buyerId, ...signed(ctx, buyerId), ...choice, ...(ctx.options.portone === 'v1' ? {} : { portone_api: 'v2' }), ...(admission ? { admission_token: admission } : {}),
      });
    } catch (error) {
      if (++networkErrors < ORDER_NETWORK_TRIES) {
        await sleep(250 * networkErrors + Math.random() * 250);
        continue;
      }
      bump(ctx.log.orderRefusals, 'NETWORK');
      note(ctx.log, `order: ${(error as Error).message}`);
      return 'NETWORK';
    }
    if (res.status === 201 && res.body) {
      ctx.log.ordersCreated++;
      return { merchant_uid: String(res.body['merchant_uid']), amount: Number(res.body['amount']), order_token: String(res.body['order_token']) };
    }
    const code = typeof res.body?.['code'] === 'string' ? (res.body['code'] as string) : `HTTP_${res.status}`;
    // A storefront that is shedding load: the buyer refreshes and tries again (an admitted buyer,
    // who waited for this, keeps trying while the admission lasts).
    if (res.status === 503 && attempt < (admission ? 20 : 4)) {
      await sleep(100 * attempt + Math.random() * 200);
      continue;
    }
    bump(ctx.log.orderRefusals, code);
    return code;
  }
}

/**
 * The waiting room: join, then poll until admitted (the admission token) or told sold_out or expired
 * (null). Polls come as often as the server allows when the wait is short, less often when it is
 * long (half the estimated wait, 1 s up to a third of the admission TTL, at most 30 s: a buyer far
 * back polls a few times, not every second), with
 * jitter from the buyer's own poll stream, so the buyer's choices do not depend on how many polls it
 * took.
 */
async function waitInQueue(ctx: BuyersContext, buyerId: string, i: number): Promise<string | null> {
  const jitter = seededRandom((ctx.options.seed ^ Math.imul(i + 1, 0x85ebca6b) ^ 0x5bd1e995) >>> 0);
  const rec: QueueRecord = { joinedAt: performance.now() - ctx.t0, resolvedAt: null, state: 'waiting', polls: 0, limited: 0 };
  ctx.log.queue.push(rec);
  const end = (state: QueueRecord['state']) => {
    rec.state = state;
    rec.resolvedAt = performance.now() - ctx.t0;
  };
  let token: string | null = null;
  let waitS = 1;
  let position = 0;
  for (let attempt = 1; token === null; attempt++) {
    try {
      const res = await queueSlot(0, () => postJson(`${ctx.apiUrl}/events/${ctx.eventId}/queue`, { buyer_id: buyerId, ...signed(ctx, buyerId) }));
      if (res.status === 201 && res.body) {
        token = String(res.body['queue_token']);
        waitS = Number(res.body['estimated_wait_seconds'] ?? 1);
        position = Number(res.body['position'] ?? 0);
        break;
      }
      if (res.status !== 503 || attempt >= 20) {
        note(ctx.log, `queue join: ${res.status} ${JSON.stringify(res.body)?.slice(0, 200)}`);
        end('error');
        return null;
      }
    } catch (error) {
      if (attempt >= 20) {
        note(ctx.log, `queue join: ${(error as Error).message}`);
        end('error');
        return null;
      }
    }
    await sleep(200 * Math.min(attempt, 10) * (0.5 + jitter()));
  }
  for (;;) {
    // Never longer than a third of the admission TTL: an admitted buyer must come back within it.
    const cap = Math.min(30, ctx.options.admissionTtl / 3);
    await sleep(Math.min(cap, Math.max(1, waitS / 2)) * 1000 * (0.9 + 0.4 * jitter()));
    let res;
    try {
      res = await queueSlot(position, () => getJson(`${ctx.apiUrl}/events/${ctx.eventId}/queue/${token}`));
    } catch (error) {
      note(ctx.log, `queue poll: ${(error as Error).message}`);
      continue;
    }
    rec.polls++;
    if (res.status === 429) {
      rec.limited++;
      waitS = 2;
      continue;
    }
    if (res.status !== 200 || !res.body) {
      if (res.status >= 500) continue;
      note(ctx.log, `queue poll: ${res.status} ${JSON.stringify(res.body)?.slice(0, 200)}`);
      end('error');
      return null;
    }
    const state = res.body['state'];
    if (state === 'admitted' && typeof res.body['admission_token'] === 'string') {
      end('admitted');
      return res.body['admission_token'];
    }
    if (state === 'sold_out' || state === 'expired') {
      end(state);
      return null;
    }
    waitS = Number(res.body['estimated_wait_seconds'] ?? 1);
    position = Number(res.body['position'] ?? position);
  }
}

async function payOnce(ctx: BuyersContext, order: Order, random: Random, retry: boolean): Promise<PaymentWindowRecord> {
  const o = ctx.options;
  // Draw everything up front, so the random stream does not depend on answers.
  let outcome: PaymentOutcome | 'failed_then_paid' = pickOutcome(o, random);
  const duplicate = random() < o.webhookDuplicates;
  const delay = Math.floor(random() * o.webhookDelayMs);
  const reorder = random() < o.webhookReorder;
  const beforeReturn = random() < o.webhookBeforeReturn;
  const failedThenPaid = random() < o.failedThenPaid;
  const buyerDelay = Math.floor(random() * o.buyerDelayMs);
  const faults: Faults = {};
  if (o.webhookLoss > 0) faults.webhook_loss = o.webhookLoss;
  if (duplicate) faults.webhook_duplicates = 1;
  if (delay > 0) faults.webhook_delay_ms = delay;
  if (reorder) {
    faults.webhook_reorder = true;
    faults.webhook_reorder_max_hold_ms = REORDER_MAX_HOLD_MS;
  }
  if (beforeReturn) faults.webhook_before_return = true;
  if (outcome === 'paid' && failedThenPaid) {
    faults.failed_then_paid_ms = o.failedThenPaidMs;
    outcome = 'failed_then_paid';
  }

  const record: PaymentWindowRecord = { t: 0, merchantUid: order.merchant_uid, impUid: null, code: 'ERROR', latencyMs: null, outcome: null, status: null, retry };
  try {
    const res = o.portone === 'v2-manual'
      ? await manualWindow(ctx, order, outcome === 'failed_then_paid' ? 'paid' : outcome, buyerDelay, faults, record)
      : await postJson(`${ctx.simUrl}/sim/${o.portone === 'v2' ? 'v2' : 'v1'}/payments`, {
        ...(o.portone === 'v2'
          ? { payment_id: order.merchant_uid, confirm_url: `${ctx.apiUrl}/portone/v2/confirm`, webhook_url: `${ctx.apiUrl}/portone/v2/webhook` }
          : { merchant_uid: order.merchant_uid, confirm_url: `${ctx.apiUrl}/portone/v1/confirm`, notice_url: `${ctx.apiUrl}/portone/v1/webhook` }),
        amount: order.amount,
        outcome: outcome === 'failed_then_paid' ? 'paid' : outcome,
        buyer_delay_ms: buyerDelay,
        faults,
      });
    if (res !== null && (res.status !== 200 || !res.body)) {
      record.code = `SIM_${res.status}`;
      note(ctx.log, `payment window: simulator answered ${res.status} ${JSON.stringify(res.body)?.slice(0, 200)}`);
    } else if (res !== null) {
      const { payment, confirm } = res.body as unknown as PaymentWindowResult;
      record.impUid = payment.imp_uid;
      record.status = payment.status;
      if (confirm === null) record.code = 'NO_CONFIRM';
      else {
        record.latencyMs = confirm.latency_ms;
        if (confirm.status === 200) record.code = 'APPROVED';
        else if (confirm.status === 0) record.code = confirm.timed_out ? 'TIMEOUT' : 'NO_ANSWER';
        else {
          const body = confirm.body as { code?: unknown } | null;
          record.code = typeof body?.code === 'string' ? body.code : `HTTP_${confirm.status}`;
        }
      }
    }
    // (v2-manual: manualWindow filled the record in.)
    if (record.code === 'APPROVED') {
      record.outcome = outcome;
      // Faults only act on approved payments (a refused one sends no webhook).
      for (const [name, value] of Object.entries(faults)) {
        if (value !== undefined && name !== 'webhook_loss' && name !== 'webhook_reorder_max_hold_ms') bump(ctx.log.faults, name);
      }
    }
  } catch (error) {
    record.code = 'ERROR';
    note(ctx.log, `payment window: ${(error as Error).message}`);
  }
  record.t = performance.now() - ctx.t0;
  ctx.log.windows.push(record);
  ctx.log.lastWindowAt = Math.max(ctx.log.lastWindowAt, record.t);
  return record;
}

/**
 * V2 manual confirmation: the payment window authenticates the buyer and hands the browser a
 * paymentToken (nothing is held yet); after the buyer's time in the window, the browser posts it to
 * dropgate, which holds and has PortOne approve. A PG decline (402) is an approval the PG declined,
 * as in the V1 flow; an abandoned window is never confirmed. @returns null: `record` is filled in.
 */
async function manualWindow(
  ctx: BuyersContext, order: Order, outcome: PaymentOutcome, buyerDelay: number, faults: Faults, record: PaymentWindowRecord,
): Promise<null> {
  const window = await postJson(`${ctx.simUrl}/sim/v2/payments`, {
    payment_id: order.merchant_uid, amount: order.amount, mode: 'manual', outcome, faults,
    webhook_url: `${ctx.apiUrl}/portone/v2/webhook`,
  });
  if (window.status !== 200 || !window.body) {
    record.code = `SIM_${window.status}`;
    note(ctx.log, `payment window: simulator answered ${window.status} ${JSON.stringify(window.body)?.slice(0, 200)}`);
    return null;
  }
  const opened = window.body as unknown as V2PaymentWindowResult;
  record.impUid = opened.payment.imp_uid;
  if (outcome === 'abandoned') {
    // The buyer closed the window: the browser never posts the token, nothing was held.
    record.code = 'APPROVED';
    record.status = opened.payment.status;
    return null;
  }
  await sleep(buyerDelay);
  const started = performance.now();
  const answer = await jsonRequest('POST', `${ctx.apiUrl}/portone/v2/manual-confirm`, {
    payment_id: order.merchant_uid, payment_token: opened.payment_token, total_amount: order.amount,
  }, { authorization: `Bearer ${order.order_token}` });
  record.latencyMs = Math.round((performance.now() - started) * 10) / 10;
  const code = typeof answer.body?.['code'] === 'string' ? (answer.body['code'] as string) : `HTTP_${answer.status}`;
  if (answer.status === 200) {
    record.code = 'APPROVED';
    record.status = 'paid';
  } else if (code === 'PAYMENT_DECLINED') {
    record.code = 'APPROVED';
    record.status = 'failed';
  } else if (code === 'PAYMENT_PENDING') {
    // PortOne did not answer in time: the order settles from what PortOne says later.
    record.code = 'APPROVED';
    record.status = null;
  } else {
    record.code = code;
  }
  return null;
}

async function cancelAtPortOne(ctx: BuyersContext, impUid: string): Promise<void> {
  try {
    const res = await postJson(`${ctx.simUrl}/sim/v1/payments/${impUid}/cancel`, { reason: '구매자 요청 취소' });
    if (res.status === 200) ctx.log.consoleCancels++;
  } catch (error) {
    note(ctx.log, `console cancel: ${(error as Error).message}`);
  }
}

/**
 * The waiting list: join with what the buyer wants, poll until offered (the offered order, read with
 * its order token), expired or sold out (a code), or until the drop's settle time would run out.
 */
async function waitOnList(ctx: BuyersContext, buyerId: string, random: Random, i: number, admission: string | null): Promise<Order | string> {
  const jitter = seededRandom((ctx.options.seed ^ Math.imul(i + 1, 0xc2b2ae35) ^ 0x27d4eb2f) >>> 0);
  const wl = ctx.log.waitlist;
  // A list entry wants at most WAITLIST_ENTRY_MAX_PLACES places (the same draws from `random` either way).
  const choice = chooseOrder(ctx.venue, random, Math.min(ctx.options.maxPerOrder, WAITLIST_ENTRY_MAX_PLACES));
  const end = (state: string): string => { bump(wl, state); return state === 'expired' || state === 'sold_out' ? state.toUpperCase() : 'WAITLIST_ERROR'; };
  let token: string;
  try {
    // With a waiting room, the buyer's admission (the list is not a way round the room).
    const res = await queueSlot(0, () => postJson(`${ctx.apiUrl}/events/${ctx.eventId}/waitlist`, {
      buyer_id: buyerId, ...signed(ctx, buyerId), ...choice, ...(admission ? { admission_token: admission } : {}),
    }));
    // A full list (WAITLIST_MAX_ENTRIES) is a refusal with its own code, not an error of the drop; so
    // is an admission that lapsed before the buyer joined (the buyer dawdled past its TTL).
    if (res.status === 409 && res.body?.['code'] === 'WAITLIST_FULL') { bump(wl, 'full'); return 'WAITLIST_FULL'; }
    if (res.status === 403 && res.body?.['code'] === 'ADMISSION_INVALID') { bump(wl, 'admission_lapsed'); return 'ADMISSION_INVALID'; }
    if (res.status !== 201 || !res.body) return end('error');
    token = String(res.body['waitlist_token']);
    bump(wl, 'joined');
  } catch {
    return end('error');
  }
  const deadline = performance.now() + ctx.options.settleTimeout * 1000;
  while (performance.now() < deadline) {
    await sleep(2_000 * (0.75 + 0.5 * jitter()));
    let res;
    try {
      res = await queueSlot(1_000_000, () => getJson(`${ctx.apiUrl}/events/${ctx.eventId}/waitlist/${token}`));
    } catch {
      continue;
    }
    const state = res.body?.['state'];
    if (res.status !== 200) continue;
    if (state === 'offered' && typeof res.body?.['merchant_uid'] === 'string') {
      const muid = res.body['merchant_uid'];
      const read = await jsonRequest('GET', `${ctx.apiUrl}/orders/${muid}`, undefined, { authorization: `Bearer ${String(res.body['order_token'])}` }).catch(() => null);
      const amount = read?.body?.['amount'];
      if (typeof amount !== 'number' || amount === 0) return end('error');
      bump(wl, 'offered');
      ctx.log.ordersCreated++;
      return { merchant_uid: muid, amount, order_token: String(res.body['order_token']) };
    }
    if (state === 'expired' || state === 'sold_out') return end(state);
  }
  return end('waiting');
}

/** One buyer, start to finish. */
async function buyer(ctx: BuyersContext, i: number): Promise<void> {
  const o = ctx.options;
  const random = buyerRandom(o.seed, i);
  const buyerId = `buyer-${i + 1}`;
  ctx.log.buyersStarted++;
  try {
    let admission: string | null = null;
    if (o.waitingRoom !== null) {
      admission = await waitInQueue(ctx, buyerId, i);
      if (admission === null) return;
    }
    for (let attempt = 1; attempt <= o.attempts; attempt++) {
      // The first choice is the buyer's favourite; after a refusal (SOLD_OUT at selection or at the
      // confirm) they look at the refreshed map and pick among the places it shows free.
      const choice = attempt === 1 ? chooseOrder(ctx.venue, random, o.maxPerOrder) : await chooseFromMap(ctx, random);
      if (choice === null) bump(ctx.log.orderRefusals, 'SOLD_OUT');
      let order: Order | string = choice === null ? 'SOLD_OUT' : await createOrder(ctx, buyerId, admission, choice);
      // Refused at selection (hold_at "order"), or nothing free on the map: the buyer picks again,
      // before any card; after the last choice, onto the waiting list if the event has one.
      if (order === 'SOLD_OUT' && (attempt === o.attempts || choice === null) && o.waitlist) order = await waitOnList(ctx, buyerId, random, i, admission);
      if (order === 'SOLD_OUT' && choice === null) return;
      if (order === 'SOLD_OUT') continue;
      if (typeof order === 'string') return;
      let window = await payOnce(ctx, order, random, false);
      // Clicking "pay" again: after a decline (sometimes), after a transient refusal (twice at most).
      for (let again = 0; again < 2; again++) {
        const declined = window.code === 'APPROVED' && window.outcome === 'failed' && random() < o.retryFailed;
        const transient = TRANSIENT_REFUSALS.has(window.code);
        if (!declined && !transient) break;
        if (transient) await sleep(200 + random() * 300);
        window = await payOnce(ctx, order, random, true);
      }
      if (window.code === 'APPROVED' && window.status === 'paid' && window.impUid !== null && random() < o.consoleCancel) {
        await cancelAtPortOne(ctx, window.impUid);
      }
      if (window.code !== 'SOLD_OUT') return;
    }
  } finally {
    ctx.log.buyersDone++;
  }
}

/**
 * Lets every buyer loose: at most `concurrency` at a time, all at once (`burst`) or arriving evenly
 * over `rampSeconds` (`ramp`). Resolves when the last buyer is done.
 */
export async function runBuyers(ctx: BuyersContext): Promise<void> {
  const o = ctx.options;
  const rampMs = o.arrival === 'ramp' ? o.rampSeconds * 1000 : 0;
  const { index, count } = ctx.share ?? { index: 0, count: 1 };
  // This process's buyers, in arrival order.
  const mine = Array.from({ length: Math.max(0, Math.ceil((o.buyers - index) / count)) }, (_, k) => index + k * count);
  if (o.waitingRoom !== null) {
    if (count > 1) shareQueueSlots(count);
    // Everyone waits in the room at once; the room (admit_per_second, max_active), not `concurrency`,
    // decides how many are in the payment window together.
    await Promise.all(mine.map(async (i) => {
      if (rampMs > 0) await sleep(ctx.t0 + (i * rampMs) / o.buyers - performance.now());
      await buyer(ctx, i);
    }));
    return;
  }
  // Lanes of the whole drop dealt out like its buyers: process `index` runs lanes index, index + count, ...
  const lanes = Math.max(1, Math.ceil((Math.min(o.concurrency, o.buyers) - index) / count));
  let next = 0;
  const lane = async () => {
    for (;;) {
      const k = next++;
      if (k >= mine.length) return;
      const i = mine[k]!;
      if (rampMs > 0) {
        const due = ctx.t0 + (i * rampMs) / o.buyers;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      await buyer(ctx, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, mine.length) }, lane));
}
