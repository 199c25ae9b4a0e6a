/**
 * A scenario, as data: a small event, a handful of orders, and a timeline of actions (genuine
 * payments through the simulator's payment window, PortOne-side cancels, forged webhooks and
 * confirms sent straight to the API, and global faults). `generateScenario(seed)` always builds the
 * same scenario from the same seed, so a failure can be replayed with `--replay <seed>`.
 *
 * Each scenario speaks one PortOne API (`apiOf(seed)`): V1, V2 with the signed confirm call, or V2
 * manual confirmation. The API and the V2-only particulars (how a forged V2 request is signed, what a
 * forged manual confirmation gets wrong) come from random streams of their own, derived from the
 * seed: the timeline a seed generates is the same whatever its API.
 *
 * Four later additions come from streams of their own too, so every seed's scenario is otherwise
 * the one it always was: reservations (`hold_at: "order"`, extensions, payments after the
 * reservation lapsed; `forReservations`), a Redis `CLIENT PAUSE` (`forRedisPause`), an API
 * process SIGKILLed and restarted (`forApiKill`), either in the timeline or while the orders are
 * being created, and the worker frozen past its locks' lease (`forWorkerStall`).
 */
import { Rng } from './random.ts';

/** How the scenario's buyers pay: V1 (confirm_url), V2 (signed confirm call) or V2 manual confirmation. */
export type PortOneApi = 'v1' | 'v2' | 'v2-manual';
export const PORTONE_APIS: readonly PortOneApi[] = ['v1', 'v2', 'v2-manual'];

/** Faults that touch every scenario running at the time: such a scenario runs alone. */
export type GlobalFaultKind = 'rest_outage' | 'kill_worker' | 'flush_redis' | 'restart_postgres' | 'pause_redis' | 'kill_api' | 'stall_worker';

export interface EventSpec {
  /** Seats `S-1-1` .. `S-1-<seats>` (0 = none). */
  seats: number;
  seatPrice: number;
  /** Capacity of the pool `ga` (0 = no pool). */
  pool: number;
  poolPrice: number;
  maxPerBuyer: number | null;
  holdTtlSeconds: number;
  /** `order`: every order reserves its places at creation (409 SOLD_OUT when taken); absent: at the confirm. */
  holdAt?: 'order';
  /** With `holdAt: 'order'`: how long a reservation lasts (and each extension renews it for). */
  reservationTtlSeconds?: number;
}

export interface OrderSpec {
  buyer: string;
  seats: string[];
  /** Places in the pool. */
  quantity: number;
  /**
   * When a fault hits the order creations (`ScenarioSpec.orderFault`), what the buyer's browser does
   * if its request fails: try once more, or give up. Absent: no fault there.
   */
  retryOnce?: boolean;
}

/** How PortOne delivers one payment's webhooks (simulator faults for that payment). */
export interface WebhookDelivery {
  lost: boolean;
  duplicates: number;
  delayMs: number;
  reorder: boolean;
  form: boolean;
  beforeReturn: boolean;
}

/** A buyer opens the payment window (the simulator plays PortOne and the PG). */
export interface PayAction {
  kind: 'pay';
  /** Number of this payment within the scenario (cancels and references use it). */
  id: number;
  order: number;
  /** What the scenario means by it: paid, failed, abandoned, failed_then_paid, late, no_confirm, tampered. */
  label: string;
  outcome: 'paid' | 'failed' | 'abandoned';
  /** Whether PortOne calls confirm_url (some PGs cannot). */
  confirm: boolean;
  /** Added to the order's amount: a tampered amount from the browser. */
  amountDelta: number;
  buyerDelayMs: number;
  /** With outcome paid: the PG reports failed first and approves this much later (0 = no). */
  flipMs: number;
  webhooks: WebhookDelivery;
  /**
   * Just before PortOne's confirm, someone who knows the imp_uid sends a confirm with it for the
   * next order, a made-up order, or a tampered amount (none: nobody does).
   */
  preempt: 'none' | 'other_order' | 'made_up_order' | 'tampered';
  /** A currency other than the event's (KRW): a V1 payment's comes from the buyer's browser. */
  currency?: string;
  /**
   * With reservations: the buyer opens the payment window only this long after the order's
   * reservation (as the buyer knows it) lapsed.
   */
  afterLapseMs?: number;
}

/** The buyer extends the order's reservation (`POST /orders/:merchant_uid/extend`, hold_at "order"). */
export interface ExtendAction {
  kind: 'extend_reservation';
  order: number;
  /** Sent this long after the reservation (as its buyer knows it) lapsed instead of at its time. */
  afterLapseMs?: number;
}

/** The merchant (or the PG) cancels a payment on PortOne's side once it is paid. */
export interface CancelAction {
  kind: 'cancel_at_portone';
  pay: number;
  afterMs: number;
  /** Only this share of the amount is cancelled (a partial cancel from the console); absent: all of it. */
  part?: number;
}

/** PortOne sends a payment's webhook again, claiming a status (maybe stale). */
export interface ResendAction {
  kind: 'resend_webhook';
  /** Index into the scenario's payments known at that moment (modulo their number). */
  payment: number;
  claim: 'paid' | 'cancelled' | 'failed' | 'ready' | null;
}

/** Which imp_uid a forged request names. */
export type ImpRef = { kind: 'made_up' } | { kind: 'existing'; n: number };
/** Which merchant_uid a forged request names. */
export type MerchantRef = { kind: 'order'; n: number } | { kind: 'imp_owner' } | { kind: 'made_up' } | { kind: 'other_event' };

/** A webhook sent straight to the API by someone who is not PortOne. */
export interface ForgedWebhookAction {
  kind: 'forge_webhook';
  imp: ImpRef;
  merchant: MerchantRef;
  status: string;
  /** V1: a form body. V2: the legacy (2024-01-01) body. */
  form: boolean;
  /** V2 only: a bad or missing signature (changes nothing, 401) or a valid one (PortOne naming another order: a hint only). */
  signature?: 'bad' | 'missing' | 'valid';
}

/**
 * What a forged V2 confirm gets wrong: a signed confirm call with a bad or missing signature, or
 * (manual confirmation) a buyer's request with another payment's token or a wrong amount.
 */
export type V2ConfirmForgery = 'bad_signature' | 'missing_signature' | 'manual_wrong_token' | 'manual_wrong_amount';

/** A confirm sent straight to the API by someone who is not PortOne. */
export interface ForgedConfirmAction {
  kind: 'forge_confirm';
  imp: ImpRef;
  merchant: MerchantRef;
  amount: 'right' | 'missing' | 'tampered';
  /** V2 only. */
  v2?: V2ConfirmForgery;
}

export interface RestOutageAction {
  kind: 'rest_outage';
  mode: 'down' | 'flaky';
  /** With `flaky`: the share of REST calls answered 503. */
  rate: number;
  durationMs: number;
}
export interface KillWorkerAction {
  kind: 'kill_worker';
  /** How long the worker stays dead before it is started again. */
  downMs: number;
}
export interface FlushRedisAction {
  kind: 'flush_redis';
}
export interface RestartPostgresAction {
  kind: 'restart_postgres';
  downMs: number;
}
/** `CLIENT PAUSE <ms> ALL` on the scenario's Redis: every client's commands wait that long. */
export interface PauseRedisAction {
  kind: 'pause_redis';
  ms: number;
}
/** The API process SIGKILLed (requests in flight fail) and started again after `downMs`. */
export interface KillApiAction {
  kind: 'kill_api';
  downMs: number;
}

/**
 * The worker process stopped (SIGSTOP) for `ms`, then continued (SIGCONT): longer than the stack's
 * JOB_LOCK_MS, so the leases of its order locks and of its BullMQ jobs run out while it is frozen and
 * it goes on from where it stopped, beside whatever took them over (a stalled job run again).
 */
export interface StallWorkerAction {
  kind: 'stall_worker';
  ms: number;
  /**
   * `now`: at its time in the timeline. `lookup`: armed then, it strikes when the worker next asks
   * PortOne about a payment (within 3 s), before the answer: the worker is frozen in the middle of a
   * settlement, holding the order's lock, and goes on from there with what it read before.
   */
  trigger: 'now' | 'lookup';
}

/** A global fault that strikes while the orders are being created instead of in the timeline. */
export interface OrderFault {
  /** It fires `delayMs` after the creation request of order #`order` is sent. */
  order: number;
  delayMs: number;
  action: PauseRedisAction | KillApiAction;
}

export type Action =
  | PayAction
  | CancelAction
  | ResendAction
  | ForgedWebhookAction
  | ForgedConfirmAction
  | RestOutageAction
  | KillWorkerAction
  | FlushRedisAction
  | RestartPostgresAction
  | PauseRedisAction
  | KillApiAction
  | StallWorkerAction
  | ExtendAction;

export interface Step {
  /** ms after the orders were created. */
  at: number;
  action: Action;
}

export interface ScenarioSpec {
  seed: number;
  api: PortOneApi;
  event: EventSpec;
  orders: OrderSpec[];
  steps: Step[];
  /** Global faults in the timeline (or during the order creations): the scenario must run alone. */
  globalFaults: GlobalFaultKind[];
  /** A global fault that strikes during the order creations (absent: none). */
  orderFault?: OrderFault;
}

export const HOLD_TTL_SECONDS = 5;
const GLOBAL: ReadonlySet<string> = new Set<GlobalFaultKind>(['rest_outage', 'kill_worker', 'flush_redis', 'restart_postgres', 'pause_redis', 'kill_api', 'stall_worker']);

export function isGlobal(action: Action): action is RestOutageAction | KillWorkerAction | FlushRedisAction | RestartPostgresAction | PauseRedisAction | KillApiAction | StallWorkerAction {
  return GLOBAL.has(action.kind);
}

function webhookDelivery(rng: Rng, mayLose: boolean): WebhookDelivery {
  return {
    lost: mayLose && rng.chance(0.2),
    duplicates: rng.weighted([[0, 6], [1, 3], [2, 1]]),
    delayMs: rng.chance(0.3) ? rng.int(100, 1_500) : 0,
    reorder: rng.chance(0.2),
    form: rng.chance(0.2),
    beforeReturn: rng.chance(0.15),
  };
}

function payAction(rng: Rng, id: number, order: number, cancel: boolean): PayAction {
  const label = rng.weighted<string>([
    ['paid', 35], ['failed', 10], ['abandoned', 10], ['failed_then_paid', 10], ['late', 10], ['no_confirm', 8], ['tampered', 8],
  ]);
  const base: PayAction = {
    kind: 'pay', id, order, label, outcome: 'paid', confirm: true, amountDelta: 0,
    buyerDelayMs: rng.chance(0.5) ? rng.int(0, 800) : 0, flipMs: 0,
    // A cancel on PortOne's side after dropgate settled is only learnt from its webhook: that one
    // may come late or twice, but it comes (PortOne retries it).
    webhooks: webhookDelivery(rng, !cancel),
    preempt: rng.weighted([['none', 14], ['other_order', 2], ['made_up_order', 1], ['tampered', 1]] as const),
  };
  switch (label) {
    case 'failed':
    case 'abandoned':
      return { ...base, outcome: label };
    case 'failed_then_paid':
      return { ...base, flipMs: rng.int(300, 3_000) };
    case 'late':
      // Paid after the hold expired, well within the late-payment watch (LATE_PAYMENT_WATCH_SECONDS,
      // 8 s), so a lost webhook is still caught: at most 1.5 s late, plus up to 2.5 s when this is a
      // second attempt approved on a hold an earlier attempt took.
      return { ...base, buyerDelayMs: HOLD_TTL_SECONDS * 1000 + rng.int(300, 1_500) };
    case 'no_confirm':
      // Without a confirm nothing was held: the webhook is dropgate's only news of the payment, so it
      // comes (late or twice, maybe), as PortOne retries it; a payment nobody is told of is not a test.
      return { ...base, confirm: false, preempt: 'none', webhooks: { ...base.webhooks, lost: false } };
    case 'tampered': {
      const confirm = rng.chance(0.6);
      const amountDelta = rng.pick([-1_000, -1, 1, 5_000]);
      return { ...base, confirm, amountDelta, preempt: confirm ? base.preempt : 'none', webhooks: { ...base.webhooks, lost: base.webhooks.lost && confirm } };
    }
    default:
      return base;
  }
}

const FORGED_STATUSES = ['paid', 'paid', 'cancelled', 'cancelled', 'failed', 'ready', 'refunded', ''];

function impRef(rng: Rng): ImpRef {
  return rng.chance(0.7) ? { kind: 'existing', n: rng.int(0, 20) } : { kind: 'made_up' };
}

function merchantRef(rng: Rng, orders: number): MerchantRef {
  return rng.weighted<MerchantRef>([
    [{ kind: 'order', n: rng.int(0, orders - 1) }, 4],
    [{ kind: 'imp_owner' }, 3],
    [{ kind: 'made_up' }, 2],
    [{ kind: 'other_event' }, 1],
  ]);
}

/**
 * The PortOne API of `seed`'s scenario, from a stream of its own (half V1, a quarter each V2 flow).
 * The salt keeps the seeds chaos.test.ts has long used for V1 (356 239 65 76 9 54) on V1.
 */
export function apiOf(seed: number): PortOneApi {
  return new Rng((seed ^ 0x2f6b_3c48) >>> 0).weighted<PortOneApi>([['v1', 2], ['v2', 1], ['v2-manual', 1]]);
}

/** The V2 particulars of the forged requests, drawn from a stream of their own (see above). */
function forV2(steps: Step[], seed: number, api: PortOneApi): void {
  const rng = new Rng((seed ^ 0x7c15_9e4b) >>> 0);
  for (const s of steps) {
    const a = s.action;
    if (a.kind === 'forge_webhook') a.signature = rng.weighted([['bad', 2], ['missing', 1], ['valid', 2]] as const);
    if (a.kind === 'forge_confirm') {
      a.v2 = api === 'v2-manual'
        ? rng.weighted<V2ConfirmForgery>([['bad_signature', 1], ['missing_signature', 1], ['manual_wrong_token', 2], ['manual_wrong_amount', 2]])
        : rng.weighted<V2ConfirmForgery>([['bad_signature', 2], ['missing_signature', 1]]);
    }
  }
}

/**
 * The money particulars (a payment in another currency, a partial cancel at PortOne), drawn from a
 * stream of their own, so every seed's scenario is otherwise the one it always was.
 */
function forMoney(steps: Step[], seed: number): void {
  const rng = new Rng((seed ^ 0x51ed_27a5) >>> 0);
  for (const s of steps) {
    const a = s.action;
    if (a.kind === 'pay' && rng.chance(0.06)) a.currency = 'USD';
    if (a.kind === 'cancel_at_portone' && rng.chance(0.35)) a.part = rng.pick([0.25, 0.5, 0.75]);
  }
}

/** Salts of the later streams (see the header): each one's draws never move another's. */
export const RESERVATION_SALT = 0x4d2c_8e19;
export const REDIS_PAUSE_SALT = 0x1b7f_a35d;
export const API_KILL_SALT = 0x6e93_d0c2;
export const WORKER_STALL_SALT = 0x2f5a_b7e3;

/**
 * Reservations, from a stream of their own: in about a third of scenarios the event holds at order
 * creation (`hold_at: "order"`, a 5 or 6 s reservation), so creating an order may answer 409
 * SOLD_OUT; buyers extend reservations (live ones, lapsed ones, one extended past its bound of 3),
 * and some payments start only after the reservation lapsed (before or after the sweep took it).
 */
function forReservations(spec: ScenarioSpec): void {
  const rng = new Rng((spec.seed ^ RESERVATION_SALT) >>> 0);
  if (!rng.chance(1 / 3)) return;
  spec.event.holdAt = 'order';
  spec.event.reservationTtlSeconds = rng.pick([5, 5, 6]);
  for (const s of spec.steps) {
    const a = s.action;
    // 'late' already pays past its hold; the others may start after the reservation lapsed.
    if (a.kind === 'pay' && a.label !== 'late' && rng.chance(0.25)) a.afterLapseMs = rng.int(0, 2_000);
  }
  const orders = spec.orders.length;
  const extend = (at: number, order: number, afterLapseMs?: number): Step => ({
    at, action: { kind: 'extend_reservation', order, ...(afterLapseMs !== undefined ? { afterLapseMs } : {}) },
  });
  for (let i = rng.weighted([[0, 2], [1, 3], [2, 2], [3, 1]]); i > 0; i--) {
    const order = rng.int(0, orders - 1);
    spec.steps.push(rng.chance(0.7) ? extend(rng.int(300, 4_500), order) : extend(0, order, rng.int(0, 1_500)));
  }
  // A buyer who keeps extending: the fourth is past MAX_RESERVATION_EXTENSIONS (3).
  if (rng.chance(0.2)) {
    const order = rng.int(0, orders - 1);
    const from = rng.int(200, 1_500);
    for (let k = 0; k < 4; k++) spec.steps.push(extend(from + k * rng.int(100, 600), order));
  }
}

/** What the buyers do when a fault hits their order creations: retry once or give up. */
function retries(rng: Rng, spec: ScenarioSpec): void {
  for (const o of spec.orders) o.retryOnce = rng.chance(0.6);
}

/**
 * A Redis pause, from a stream of its own: in about one scenario in ten, `CLIENT PAUSE <ms> ALL`
 * (200 to 2,500 ms) in the timeline or, one time in four, while the orders are being created.
 */
function forRedisPause(spec: ScenarioSpec): void {
  const rng = new Rng((spec.seed ^ REDIS_PAUSE_SALT) >>> 0);
  if (!rng.chance(0.1)) return;
  const action: PauseRedisAction = { kind: 'pause_redis', ms: rng.int(200, 2_500) };
  if (rng.chance(0.25)) {
    spec.orderFault = { order: rng.int(0, spec.orders.length - 1), delayMs: rng.int(0, 20), action };
    retries(rng, spec);
  } else spec.steps.push({ at: rng.int(300, 4_500), action });
  spec.globalFaults.push('pause_redis');
}

/**
 * The API SIGKILLed, from a stream of its own: in about one scenario in ten, restarted after 0 to
 * 2 s, in the timeline or, one time in three, while the orders are being created (unless a Redis
 * pause strikes there already).
 */
function forApiKill(spec: ScenarioSpec): void {
  const rng = new Rng((spec.seed ^ API_KILL_SALT) >>> 0);
  if (!rng.chance(0.1)) return;
  const action: KillApiAction = { kind: 'kill_api', downMs: rng.weighted([[0, 1], [rng.int(200, 2_000), 2]]) };
  const order = rng.int(0, spec.orders.length - 1);
  const delayMs = rng.int(0, 20);
  const at = rng.int(300, 4_500);
  if (rng.chance(1 / 3) && spec.orderFault === undefined) {
    spec.orderFault = { order, delayMs, action };
    retries(rng, spec);
  } else spec.steps.push({ at, action });
  spec.globalFaults.push('kill_api');
}

/**
 * The worker frozen, from a stream of its own: in about one scenario in eight, SIGSTOP for 1.2 to 4 s
 * (the stack's JOB_LOCK_MS is 1 s) somewhere in the timeline, then SIGCONT; half the time at the
 * moment it next asks PortOne about a payment (under the order's lock), before the answer. What it
 * hunts: a worker that goes on after its order lock's lease ran out, beside a job that took the order
 * over (its own stalled job run again, another worker's, the expiry's), and acts on what it read
 * before it stopped.
 */
function forWorkerStall(spec: ScenarioSpec): void {
  const rng = new Rng((spec.seed ^ WORKER_STALL_SALT) >>> 0);
  if (!rng.chance(0.125)) return;
  const at = rng.int(200, 4_500);
  const ms = rng.int(1_200, 4_000);
  spec.steps.push({ at, action: { kind: 'stall_worker', ms, trigger: rng.chance(0.5) ? 'lookup' : 'now' } });
  spec.globalFaults.push('stall_worker');
}

/** The scenario of `seed`. Pure: no clock, no I/O. */
export function generateScenario(seed: number): ScenarioSpec {
  const api = apiOf(seed);
  const rng = new Rng(seed);
  const seats = rng.weighted([[0, 2], [1, 1], [2, 2], [3, 2], [4, 1]]);
  let pool = rng.weighted([[0, 2], [1, 2], [2, 2], [3, 1]]);
  if (seats === 0 && pool === 0) pool = rng.int(1, 3);
  const event: EventSpec = {
    seats,
    seatPrice: rng.pick([10_000, 55_000, 150_000]),
    pool,
    poolPrice: rng.pick([3_000, 20_000]),
    maxPerBuyer: rng.chance(0.25) ? rng.int(2, 3) : null,
    holdTtlSeconds: HOLD_TTL_SECONDS,
  };
  const seatIds = Array.from({ length: seats }, (_, i) => `S-1-${i + 1}`);
  const buyers = rng.int(2, 4);
  const orders: OrderSpec[] = Array.from({ length: rng.int(2, 5) }, () => {
    const mine = seats > 0 && (pool === 0 || rng.chance(0.6)) ? rng.sample(seatIds, rng.int(1, Math.min(2, seats))) : [];
    const quantity = pool > 0 && (mine.length === 0 || rng.chance(0.3)) ? rng.int(1, Math.min(2, pool)) : 0;
    return { buyer: `b${rng.int(1, buyers)}`, seats: mine, quantity };
  });

  const steps: Step[] = [];
  let payId = 0;
  orders.forEach((_o, n) => {
    const attempts = rng.weighted([[0, 1], [1, 7], [2, 2]]);
    for (let a = 0; a < attempts; a++) {
      const cancel = rng.chance(0.2);
      const pay = payAction(rng, payId++, n, cancel);
      steps.push({ at: rng.int(0, 2_500), action: pay });
      if (cancel && pay.outcome === 'paid') steps.push({ at: 0, action: { kind: 'cancel_at_portone', pay: pay.id, afterMs: rng.int(0, 2_500) } });
    }
  });
  for (let i = rng.int(0, 4); i > 0; i--) {
    steps.push({ at: rng.int(0, 4_500), action: { kind: 'forge_webhook', imp: impRef(rng), merchant: merchantRef(rng, orders.length), status: rng.pick(FORGED_STATUSES), form: rng.chance(0.25) } });
  }
  for (let i = rng.int(0, 4); i > 0; i--) {
    // Some come late: after refunds and expiries (a bare confirm must not re-open a finished order).
    steps.push({ at: rng.chance(0.7) ? rng.int(0, 4_500) : rng.int(4_500, 9_000), action: { kind: 'forge_confirm', imp: impRef(rng), merchant: merchantRef(rng, orders.length), amount: rng.weighted([['right', 3], ['missing', 1], ['tampered', 2]] as const) } });
  }
  for (let i = rng.weighted([[0, 3], [1, 2], [2, 1]]); i > 0; i--) {
    steps.push({ at: rng.int(500, 4_500), action: { kind: 'resend_webhook', payment: rng.int(0, 20), claim: rng.pick(['paid', 'cancelled', 'failed', 'ready', null] as const) } });
  }

  const globalFaults: GlobalFaultKind[] = [];
  for (let i = rng.weighted([[0, 6], [1, 3], [2, 1]]); i > 0; i--) {
    const kind = rng.weighted<GlobalFaultKind>([['rest_outage', 3], ['kill_worker', 3], ['flush_redis', 2], ['restart_postgres', 2]]);
    const at = rng.int(300, 4_500);
    switch (kind) {
      case 'rest_outage': {
        const down = rng.chance(0.5);
        steps.push({ at, action: { kind, mode: down ? 'down' : 'flaky', rate: down ? 1 : rng.pick([0.3, 0.5, 0.8]), durationMs: rng.int(1_000, 4_000) } });
        break;
      }
      case 'kill_worker':
        steps.push({ at, action: { kind, downMs: rng.weighted([[0, 1], [rng.int(200, 2_500), 2]]) } });
        break;
      case 'flush_redis':
        steps.push({ at, action: { kind } });
        break;
      case 'restart_postgres':
        steps.push({ at, action: { kind, downMs: rng.weighted([[0, 1], [rng.int(300, 2_500), 2]]) } });
        break;
    }
    globalFaults.push(kind);
  }
  steps.sort((a, b) => a.at - b.at);
  if (api !== 'v1') forV2(steps, seed, api);
  forMoney(steps, seed);
  const spec: ScenarioSpec = { seed, api, event, orders, steps, globalFaults };
  // Added after the others drew (they walk the steps), and sorted stably: the steps a seed always had
  // keep their order.
  forReservations(spec);
  forRedisPause(spec);
  forApiKill(spec);
  forWorkerStall(spec);
  steps.sort((a, b) => a.at - b.at);
  return spec;
}

/** One line per step, for a human replaying a seed. */
export function describeScenario(spec: ScenarioSpec): string[] {
  const e = spec.event;
  const f = spec.orderFault;
  const lines = [
    `seed ${spec.seed} (PortOne ${spec.api}): ${e.seats} seats at ₩${e.seatPrice}, pool of ${e.pool} at ₩${e.poolPrice}, hold ${e.holdTtlSeconds} s, max per buyer ${e.maxPerBuyer ?? 'none'}${e.holdAt === 'order' ? `, reserved at order for ${e.reservationTtlSeconds} s` : ''}`,
    ...spec.orders.map((o, i) => `  order #${i} buyer ${o.buyer}: ${[...o.seats, ...(o.quantity > 0 ? [`ga x${o.quantity}`] : [])].join(', ')}${o.retryOnce === undefined ? '' : o.retryOnce ? ' (if its creation fails: retries once)' : ' (if its creation fails: gives up)'}`),
    ...(f ? [`  ${f.delayMs} ms after order #${f.order}'s creation is sent: ${describeAction(f.action)}`] : []),
  ];
  for (const s of spec.steps) lines.push(`  +${String(s.at).padStart(5)} ms ${describeAction(s.action)}`);
  return lines;
}

export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'pay': {
      const w = a.webhooks;
      const faults = [w.lost ? 'lost' : '', w.duplicates ? `dup x${w.duplicates}` : '', w.delayMs ? `delay ${w.delayMs} ms` : '', w.reorder ? 'reorder' : '', w.form ? 'form' : '', w.beforeReturn ? 'before return' : ''].filter(Boolean);
      return `pay #${a.id} order #${a.order}: ${a.label} (${a.afterLapseMs !== undefined ? `window opens ${a.afterLapseMs} ms after the reservation lapsed, ` : ''}outcome ${a.outcome}${a.confirm ? '' : ', no confirm'}${a.preempt !== 'none' ? `, pre-empted by a forged confirm (${a.preempt.replace(/_/g, ' ')})` : ''}${a.amountDelta ? `, amount ${a.amountDelta > 0 ? '+' : ''}${a.amountDelta}` : ''}${a.buyerDelayMs ? `, buyer ${a.buyerDelayMs} ms` : ''}${a.flipMs ? `, paid ${a.flipMs} ms after failing` : ''}${a.currency ? `, in ${a.currency}` : ''}; webhooks ${faults.join(', ') || 'clean'})`;
    }
    case 'cancel_at_portone':
      return `cancel ${a.part ? `${a.part * 100} % of ` : ''}pay #${a.pay} at PortOne ${a.afterMs} ms after it is paid`;
    case 'resend_webhook':
      return `PortOne resends the webhook of payment [${a.payment}] claiming ${a.claim ?? 'its real status'}`;
    case 'forge_webhook':
      return `forged webhook ${JSON.stringify({ imp: a.imp.kind === 'made_up' ? 'made up' : `payment [${a.imp.n}]`, merchant: refText(a.merchant), status: a.status })}${a.form ? (a.signature ? ' (legacy body)' : ' (form)') : ''}${a.signature ? ` (${a.signature} signature)` : ''}`;
    case 'forge_confirm':
      return `forged confirm ${JSON.stringify({ imp: a.imp.kind === 'made_up' ? 'made up' : `payment [${a.imp.n}]`, merchant: refText(a.merchant), amount: a.amount })}${a.v2 ? ` (${a.v2.replace(/_/g, ' ')})` : ''}`;
    case 'rest_outage':
      return `PortOne REST ${a.mode === 'down' ? 'down' : `fails ${Math.round(a.rate * 100)}% of calls`} for ${a.durationMs} ms`;
    case 'kill_worker':
      return `SIGKILL the worker, restart it after ${a.downMs} ms`;
    case 'flush_redis':
      return 'FLUSHALL Redis';
    case 'restart_postgres':
      return `restart Postgres (down ${a.downMs} ms)`;
    case 'pause_redis':
      return `CLIENT PAUSE ${a.ms} ALL on Redis`;
    case 'kill_api':
      return `SIGKILL the API, restart it after ${a.downMs} ms`;
    case 'stall_worker':
      return `SIGSTOP the worker for ${a.ms} ms (past its locks' lease)${a.trigger === 'lookup' ? ' when it next asks PortOne about a payment' : ''}, then SIGCONT`;
    case 'extend_reservation':
      return `the buyer of order #${a.order} extends its reservation${a.afterLapseMs !== undefined ? ` ${a.afterLapseMs} ms after it lapsed` : ''}`;
  }
}

function refText(m: MerchantRef): string {
  return m.kind === 'order' ? `order #${m.n}` : m.kind.replace('_', ' ');
}
