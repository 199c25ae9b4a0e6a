/**
 * One scenario from start to verdict: create its event and orders through the API, play its
 * timeline, wait until it is at rest, then check every invariant (@dropgate/invariants, checks 1-5)
 * plus what only the campaign sees: a 500 answered to anyone, a confirm PortOne got no answer to in
 * time, a process that died by itself.
 */
import { checkAll, type InvariantReport } from '@dropgate/invariants';
import { note, payWindow, perform, type Anomaly, type CreatedOrder, type ScenarioRuntime } from './actions.ts';
import { describeAction, type OrderSpec, type ScenarioSpec } from './scenario.ts';
import { waitSettled, type SettleOutcome } from './settle.ts';
import { STACK_TIMING, type ChaosStack } from './stack.ts';

/** A broken invariant: the design.md invariant number (or `process`), and what was seen. */
export interface Violation {
  invariant: string;
  message: string;
}

export interface ScenarioResult {
  seed: number;
  eventId: string;
  ok: boolean;
  violations: Violation[];
  durationMs: number;
  settle: SettleOutcome;
  /** Orders by final status, payments by PortOne status. */
  outcome: string;
  /** What happened, step by step (shown for a failure). */
  log: string[];
  /**
   * For a failure: PortOne's ledger (confirms, webhooks, cancels) and the record's order event log in
   * time order, and each order's final row: what the diagnosis reads.
   */
  trace: string[];
  spec: ScenarioSpec;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * An admin or storefront POST. `retryForMs`: how long a 503 or no answer is tried again (a rebuild
 * after an earlier scenario's fault); 0: once, as a buyer's browser sends it.
 */
async function post(stack: ChaosStack, path: string, body: unknown, anomalies: Anomaly[], retryForMs = 15_000): Promise<{ status: number; body: Record<string, unknown> }> {
  const deadline = performance.now() + retryForMs;
  for (;;) {
    let status = 0;
    let parsed: Record<string, unknown>;
    try {
      const res = await fetch(`${stack.apiUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.adminToken}` },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      status = res.status;
      const text = await res.text();
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      if (status >= 500 && status !== 503) anomalies.push({ invariant: '7', message: `POST ${path} answered ${status}: ${text.slice(0, 200)}` });
    } catch (error) {
      parsed = { code: 'UNREACHABLE', message: (error as Error).message };
    }
    // Not ready (a rebuild after an earlier scenario's fault) or unreachable: try again, bounded.
    if ((status === 503 || status === 0) && performance.now() < deadline) {
      await sleep(200);
      continue;
    }
    return { status, body: parsed };
  }
}

function eventBody(id: string, spec: ScenarioSpec): Record<string, unknown> {
  const e = spec.event;
  return {
    id,
    name: `chaos ${spec.seed}`,
    hold_ttl_seconds: e.holdTtlSeconds,
    ...(e.maxPerBuyer !== null ? { max_per_buyer: e.maxPerBuyer } : {}),
    ...(e.seats > 0 ? { seats: Array.from({ length: e.seats }, (_, i) => ({ id: `S-1-${i + 1}`, section: 'S', row: '1', number: String(i + 1), price: e.seatPrice })) } : {}),
    ...(e.pool > 0 ? { pools: [{ id: 'ga', name: 'General admission', capacity: e.pool, price: e.poolPrice }] } : {}),
    ...(e.holdAt === 'order' ? { hold_at: 'order', reservation_ttl_seconds: e.reservationTtlSeconds } : {}),
  };
}

/** A confirm approved this long past CONFIRM_BUDGET_MS (as PortOne timed it, the network and its own loop included) was approved late. */
const LATE_APPROVAL_SLACK_MS = 500;

/**
 * What creating each order must answer, given the orders created before it (in turn, before any
 * payment): 403 BUYER_LIMIT past the buyer limit (with reservations the buyer's reserved places
 * count; without, only the order's own), with reservations 409 SOLD_OUT when a seat is reserved or
 * the pool's places are, else 201.
 */
class Selection {
  readonly #taken = new Set<string>();
  #pool = 0;
  readonly #buyers = new Map<string, number>();
  readonly spec: ScenarioSpec;
  constructor(spec: ScenarioSpec) {
    this.spec = spec;
  }

  expected(o: OrderSpec): 'created' | 'BUYER_LIMIT' | 'SOLD_OUT' {
    const e = this.spec.event;
    const reserving = e.holdAt === 'order';
    const qty = o.seats.length + o.quantity;
    if (e.maxPerBuyer !== null && (reserving ? (this.#buyers.get(o.buyer) ?? 0) : 0) + qty > e.maxPerBuyer) return 'BUYER_LIMIT';
    if (reserving && (o.seats.some((x) => this.#taken.has(x)) || this.#pool + o.quantity > e.pool)) return 'SOLD_OUT';
    return 'created';
  }

  /** An order was created: with reservations, its places are taken. */
  created(o: OrderSpec): void {
    if (this.spec.event.holdAt !== 'order') return;
    for (const x of o.seats) this.#taken.add(x);
    this.#pool += o.quantity;
    this.#buyers.set(o.buyer, (this.#buyers.get(o.buyer) ?? 0) + o.seats.length + o.quantity);
  }
}

/**
 * Creates the scenario's orders in turn. Before a fault that strikes during the creations
 * (`spec.orderFault`), each is sent until the API answers (bounded); from the order it strikes at on,
 * as a browser does: once, and when that fails (no answer, or 503) once more or not at all, as the
 * order's buyer does. Each answer before the fault must be the one `Selection` expects; after it, an
 * order whose creation answer was lost may hold places (a reservation nobody got), so no expectation.
 */
async function createOrders(stack: ChaosStack, spec: ScenarioSpec, eventId: string, anomalies: Anomaly[], early: (line: string) => void): Promise<CreatedOrder[]> {
  const orders: CreatedOrder[] = [];
  const selection = new Selection(spec);
  const fault = spec.orderFault;
  let faultDone: Promise<void> = Promise.resolve();
  for (const [index, o] of spec.orders.entries()) {
    const body = { buyer_id: o.buyer, ...(spec.api !== 'v1' ? { portone_api: 'v2' } : {}), ...(o.seats.length > 0 ? { seats: o.seats } : {}), ...(o.quantity > 0 ? { items: [{ pool: 'ga', quantity: o.quantity }] } : {}) };
    const browser = fault !== undefined && index >= fault.order;
    if (fault && index === fault.order) {
      faultDone = sleep(fault.delayMs).then(async () => {
        early(`${describeAction(fault.action)} while order #${index} is being created`);
        if (fault.action.kind === 'kill_api') await stack.killApi(fault.action.downMs);
        else await stack.pauseRedis(fault.action.ms);
        early(fault.action.kind === 'kill_api' ? `API restarted (after ${fault.action.downMs} ms down)` : 'Redis pause over');
      }).catch((error: Error) => early(`the fault failed: ${error.message}`));
    }
    const expected = browser ? null : selection.expected(o);
    let res = await post(stack, `/events/${eventId}/orders`, body, anomalies, browser ? 0 : 15_000);
    let tries = '';
    if (browser && (res.status === 0 || res.status === 503)) {
      if (o.retryOnce) {
        early(`order #${index}: creation failed (${res.status} ${String(res.body['code'] ?? '')}), the browser tries once more`);
        await sleep(500);
        res = await post(stack, `/events/${eventId}/orders`, body, anomalies, 0);
        tries = ', after one retry';
      } else tries = ', the buyer gave up';
    }
    const code = res.status === 201 ? 'created' : String(res.body['code'] ?? res.status);
    if (expected !== null && code !== expected) {
      anomalies.push({ invariant: 'selection', message: `creating order #${index} (${JSON.stringify(body)}) answered ${res.status} ${code}; the orders before it call for ${expected}` });
    }
    if (res.status === 201) {
      selection.created(o);
      const exp = typeof res.body['hold_expires_at'] === 'string' ? Date.parse(res.body['hold_expires_at']) : NaN;
      if (spec.event.holdAt === 'order' && res.body['status'] !== 'held') anomalies.push({ invariant: 'selection', message: `order #${index} was created ${String(res.body['status'])}, not held, on an event that reserves at order` });
      orders.push({ index, merchantUid: String(res.body['merchant_uid']), amount: Number(res.body['amount']), orderToken: String(res.body['order_token']), refused: null, holdExpiresAt: Number.isFinite(exp) ? exp : null, extensions: 0 });
    } else {
      orders.push({ index, merchantUid: null, amount: 0, orderToken: null, refused: `${res.status} ${String(res.body['code'] ?? '')}${tries}`, holdExpiresAt: null, extensions: null });
    }
  }
  await faultDone;
  return orders;
}

async function check(stack: ChaosStack, eventId: string): Promise<InvariantReport> {
  return checkAll({ eventId, db: stack.db, redis: stack.redis, apiUrl: stack.apiUrl, ledger: stack.sim.ledger(), adminToken: stack.adminToken });
}

/** Runs `spec` on `stack` with event id `c<seed in base 36>-<tag>`. Never throws for a violation. */
export async function runScenario(stack: ChaosStack, spec: ScenarioSpec, opts: { tag: string; settleTimeoutMs?: number }): Promise<ScenarioResult> {
  const started = performance.now();
  const crashesBefore = stack.crashes.length;
  const eventId = `c${spec.seed.toString(36)}-${opts.tag}`.slice(0, 28);
  const anomalies: Anomaly[] = [];
  const log: string[] = [];
  const violations: Violation[] = [];

  const created = await post(stack, '/admin/events', eventBody(eventId, spec), anomalies);
  if (created.status !== 201) throw new Error(`creating event ${eventId} answered ${created.status}: ${JSON.stringify(created.body)}`);
  const creating = performance.now();
  const early = (line: string) => log.push(`(creating orders, +${String(Math.round(performance.now() - creating)).padStart(5)} ms) ${line}`);
  const orders = await createOrders(stack, spec, eventId, anomalies, early);

  const reservationTtlMs = spec.event.holdAt === 'order' ? (spec.event.reservationTtlSeconds ?? 0) * 1000 : null;
  const rt: ScenarioRuntime = { stack, api: spec.api, eventId, reservationTtlMs, orders, t0: performance.now(), log, anomalies, pays: new Map(), tokens: new Map() };
  note(rt, `PortOne ${spec.api}${reservationTtlMs !== null ? `, reservations of ${reservationTtlMs / 1000} s` : ''}`);
  for (const o of orders) note(rt, `order #${o.index}: ${o.merchantUid ? `${o.merchantUid} ₩${o.amount}${o.holdExpiresAt !== null ? `, reserved until +${Math.round(o.holdExpiresAt - Date.now())} ms` : ''}` : `refused (${o.refused})`}`);
  // Payment windows first (cancels and forged requests refer to them), each at its time. V2 pays a
  // paymentId once: the buyer opens another window for an order only after the last one closed (the
  // simulator would let two concurrent attempts of one paymentId both be paid, which PortOne V2 does not).
  const lastWindow = new Map<number, Promise<unknown>>();
  for (const s of spec.steps) {
    if (s.action.kind === 'pay') {
      const a = s.action;
      const before = spec.api === 'v1' ? Promise.resolve() : (lastWindow.get(a.order) ?? Promise.resolve());
      const window = Promise.all([sleep(s.at), before]).then(() => payWindow(rt, a));
      lastWindow.set(a.order, window);
      rt.pays.set(a.id, window);
    }
  }
  await Promise.all(spec.steps.map(async (s) => {
    await sleep(s.at - (performance.now() - rt.t0));
    await perform(rt, s.action);
  }));
  note(rt, 'timeline done; waiting for the stack to settle');

  const settle = await waitSettled(stack, eventId, { timeoutMs: opts.settleTimeoutMs ?? 60_000 });
  note(rt, settle.settled ? `settled after ${(settle.ms / 1000).toFixed(1)} s` : `NOT settled after ${(settle.ms / 1000).toFixed(1)} s: ${settle.pending.join(', ')}`);
  if (!settle.settled) violations.push({ invariant: '3', message: `did not settle within ${Math.round(settle.ms / 1000)} s: ${settle.pending.join(', ')}` });

  let report: InvariantReport | null = null;
  try {
    report = await check(stack, eventId);
    if (!report.ok) {
      // The stack looked idle; look once more a moment later, so a race in telling "idle" is not
      // reported as a broken invariant. What is still broken then is final.
      await sleep(1_500);
      report = await check(stack, eventId);
    }
  } catch (error) {
    violations.push({ invariant: 'check', message: `the checks failed to run: ${(error as Error).message}` });
  }
  for (const r of report?.results ?? []) for (const v of r.violations) violations.push({ invariant: String(r.id), message: v });

  // What PortOne itself got from dropgate: a 500, or no answer to a confirm in time.
  const ledger = stack.sim.ledger();
  const mine = (m: string) => m.startsWith(`${eventId}.`);
  for (const c of ledger.confirms.filter((x) => mine(x.merchant_uid))) {
    if (c.timed_out) violations.push({ invariant: '4', message: `PortOne's confirm of ${c.imp_uid} (${c.merchant_uid}) got no answer within its deadline (${c.latency_ms} ms)` });
    else if (c.http_status === 200 && c.latency_ms > Number(STACK_TIMING.CONFIRM_BUDGET_MS) + LATE_APPROVAL_SLACK_MS) {
      violations.push({ invariant: '4', message: `PortOne's confirm of ${c.imp_uid} (${c.merchant_uid}) was approved after ${c.latency_ms} ms, past the ${STACK_TIMING.CONFIRM_BUDGET_MS} ms budget` });
    }
    else if (c.http_status >= 500 && c.http_status !== 503) violations.push({ invariant: '7', message: `PortOne's confirm of ${c.imp_uid} (${c.merchant_uid}) was answered ${c.http_status}` });
  }
  for (const w of ledger.webhooks.filter((x) => mine(x.merchant_uid))) {
    if (w.http_status !== null && w.http_status >= 500 && w.http_status !== 503) {
      violations.push({ invariant: '7', message: `PortOne's ${w.status} webhook of ${w.imp_uid} (${w.merchant_uid}) was answered ${w.http_status}` });
    }
  }
  violations.push(...anomalies);
  for (const c of stack.crashes.slice(crashesBefore)) {
    violations.push({ invariant: 'process', message: `the ${c.name} process exited by itself (code ${c.code}, signal ${c.signal}); last output: ${c.tail.slice(-3).join(' | ').slice(0, 600)}` });
  }

  const trace = violations.length > 0 ? await traceOf(stack, eventId, orders, wallT0(rt.t0)).catch((error: Error) => [`no trace: ${error.message}`]) : [];
  const statuses = new Map<string, number>();
  for (const row of await stack.db.selectFrom('orders').select('status').where('event_id', '=', eventId).execute().catch(() => [])) {
    statuses.set(row.status, (statuses.get(row.status) ?? 0) + 1);
  }
  const payments = new Map<string, number>();
  for (const p of ledger.payments.filter((x) => mine(x.merchant_uid))) payments.set(p.status, (payments.get(p.status) ?? 0) + 1);
  const list = (m: Map<string, number>) => [...m].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${n} ${k}`).join(', ') || 'none';
  return {
    seed: spec.seed,
    eventId,
    ok: violations.length === 0,
    violations,
    durationMs: performance.now() - started,
    settle,
    outcome: `orders: ${list(statuses)}; payments: ${list(payments)}`,
    log,
    trace,
    spec,
  };
}

/** The wall-clock time (epoch ms) of the performance.now() value `t0`. */
function wallT0(t0: number): number {
  return Date.now() - (performance.now() - t0);
}

/** PortOne's ledger and the record's event log for the event, merged in time order. */
async function traceOf(stack: ChaosStack, eventId: string, orders: readonly CreatedOrder[], wall0: number): Promise<string[]> {
  const name = (muid: string | null) => {
    const o = orders.find((x) => x.merchantUid === muid);
    return o ? `order #${o.index}` : (muid ?? '?');
  };
  const at = (iso: string | Date) => `+${String(Math.round(new Date(iso).getTime() - wall0)).padStart(5)} ms`;
  const mine = (m: string | null) => m !== null && m.startsWith(`${eventId}.`);
  const ledger = stack.sim.ledger();
  const rows: { t: number; line: string }[] = [];
  const add = (when: string | Date, line: string) => rows.push({ t: new Date(when).getTime(), line: `${at(when)} ${line}` });
  for (const c of ledger.confirms.filter((x) => mine(x.merchant_uid))) add(c.at, `PortOne confirm ${c.imp_uid} ${name(c.merchant_uid)} ₩${c.amount} → ${c.http_status}${c.reason ? ` (${c.reason})` : ''}`);
  for (const w of ledger.webhooks.filter((x) => mine(x.merchant_uid))) {
    add(w.at, `PortOne webhook ${w.status} ${w.imp_uid} ${name(w.merchant_uid)} ${w.lost ? 'LOST' : `→ ${w.http_status}`}${w.attempt > 1 ? ` (retry ${w.attempt - 1})` : ''}${w.copy > 0 ? ` (duplicate ${w.copy})` : ''}`);
  }
  for (const c of ledger.cancels.filter((x) => mine(x.merchant_uid))) add(c.at, `PortOne cancel (${c.source}) ${c.imp_uid} ${name(c.merchant_uid)} ${c.ok ? `₩${c.amount} returned` : `refused: ${c.message}`}${c.reason ? ` (${c.reason})` : ''}`);
  const events = await stack.db.selectFrom('order_events').select(['merchant_uid', 'type', 'data', 'at']).where('event_id', '=', eventId).orderBy('id').execute();
  for (const e of events) add(e.at, `record ${name(e.merchant_uid)} ${e.type} ${JSON.stringify(e.data).slice(0, 300)}`);
  rows.sort((a, b) => a.t - b.t);
  const lines = rows.map((r) => r.line);
  const finalOrders = await stack.db.selectFrom('orders').select(['merchant_uid', 'status', 'status_reason', 'paid_imp_uid', 'amount']).where('event_id', '=', eventId).execute();
  lines.push('final orders:');
  for (const o of finalOrders) lines.push(`  ${name(o.merchant_uid)} ${o.merchant_uid} ₩${o.amount}: ${o.status}${o.paid_imp_uid ? ` with ${o.paid_imp_uid}` : ''}${o.status_reason ? ` ("${o.status_reason}")` : ''}`);
  const payments = await stack.db.selectFrom('payments').select(['imp_uid', 'merchant_uid', 'status', 'amount', 'cancel_amount']).where('event_id', '=', eventId).execute();
  lines.push('payment rows (record) vs PortOne:');
  for (const p of ledger.payments.filter((x) => mine(x.merchant_uid))) {
    const row = payments.find((r) => r.imp_uid === p.imp_uid);
    lines.push(`  ${p.imp_uid} ${name(p.merchant_uid)}: PortOne ${p.status} ₩${p.amount} (cancelled ₩${p.cancel_amount}); record ${row ? `${row.status} ₩${row.amount} (cancelled ₩${row.cancel_amount})` : 'none'}`);
  }
  return lines;
}
