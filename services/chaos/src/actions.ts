/**
 * Carries out a scenario's actions against the stack: genuine payments through the simulator,
 * PortOne-side cancels and resent webhooks, forged webhooks and confirms sent straight to the API,
 * and the global faults. Every action writes one line to the scenario's log (what it sent, what it
 * got), which is what a failure report shows.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Faults, PaymentWindowResult, SimPayment } from '@dropgate/portone-sim';
import type { ChaosStack } from './stack.ts';
import type { Action, CancelAction, ForgedConfirmAction, ForgedWebhookAction, ImpRef, MerchantRef, PayAction, ResendAction } from './scenario.ts';

/** An order as created through the storefront (null fields when creation was refused). */
export interface CreatedOrder {
  index: number;
  merchantUid: string | null;
  amount: number;
  /** Why it was not created. */
  refused: string | null;
}

/** An answer of the API that breaks "bad input changes nothing, never a 500" (or a dead process). */
export interface Anomaly {
  invariant: string;
  message: string;
}

export interface ScenarioRuntime {
  readonly stack: ChaosStack;
  readonly eventId: string;
  readonly orders: readonly CreatedOrder[];
  /** performance.now() when the timeline started. */
  readonly t0: number;
  readonly log: string[];
  readonly anomalies: Anomaly[];
  /** Payment windows by pay action id, as they finish. */
  readonly pays: Map<number, Promise<PaymentWindowResult | null>>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

export function note(rt: ScenarioRuntime, line: string): void {
  rt.log.push(`+${String(Math.round(performance.now() - rt.t0)).padStart(5)} ms ${line}`);
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function token11(): string {
  let t = '';
  for (let i = 0; i < 11; i++) t += BASE62[randomInt(62)];
  return t;
}
const madeUpImp = () => `imp_${String(randomInt(0, 1e12)).padStart(12, '0')}`;

/** The event's payments PortOne knows so far, oldest first. */
function scenarioPayments(rt: ScenarioRuntime): SimPayment[] {
  return rt.stack.sim.ledger().payments.filter((p) => p.merchant_uid.startsWith(`${rt.eventId}.`));
}

function resolveImp(rt: ScenarioRuntime, ref: ImpRef): { imp: string; owner: string | null } {
  if (ref.kind === 'existing') {
    const known = scenarioPayments(rt);
    const p = known[ref.n % Math.max(1, known.length)];
    if (p) return { imp: p.imp_uid, owner: p.merchant_uid };
  }
  return { imp: madeUpImp(), owner: null };
}

function resolveMerchant(rt: ScenarioRuntime, ref: MerchantRef, owner: string | null): string {
  switch (ref.kind) {
    case 'order':
      return rt.orders[ref.n % rt.orders.length]?.merchantUid ?? `${rt.eventId}.${token11()}`;
    case 'imp_owner':
      return owner ?? rt.orders[0]?.merchantUid ?? `${rt.eventId}.${token11()}`;
    case 'made_up':
      return `${rt.eventId}.${token11()}`;
    case 'other_event':
      return `zz-${randomBytes(3).toString('hex')}.${token11()}`;
  }
}

function orderOf(rt: ScenarioRuntime, muid: string): string {
  const o = rt.orders.find((x) => x.merchantUid === muid);
  return o ? `order #${o.index}` : muid.startsWith(`${rt.eventId}.`) ? 'a made-up order' : 'another event';
}

/** Sends a request straight to the API; a 500 (or any 5xx but 503) is an anomaly. */
async function send(rt: ScenarioRuntime, path: string, body: Record<string, unknown>, form: boolean): Promise<{ status: number; text: string }> {
  const headers = { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json' };
  const payload = form
    ? new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString()
    : JSON.stringify(body);
  try {
    const res = await fetch(`${rt.stack.apiUrl}${path}`, { method: 'POST', headers, body: payload, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    if (res.status >= 500 && res.status !== 503) {
      rt.anomalies.push({ invariant: '7', message: `POST ${path} ${payload} answered ${res.status}: ${text.slice(0, 200)}` });
    }
    return { status: res.status, text };
  } catch (error) {
    return { status: 0, text: (error as Error).message };
  }
}

const codeOf = (text: string): string => {
  try {
    const b = JSON.parse(text) as { code?: string; approved?: boolean };
    return b.approved ? 'approved' : (b.code ?? '');
  } catch {
    return '';
  }
};

/** The confirm_url of a payment: the API's, or the interceptor's when a forged confirm goes first. */
function confirmUrlFor(rt: ScenarioRuntime, a: PayAction, merchantUid: string): string {
  if (a.preempt === 'none') return rt.stack.confirmUrl;
  const next = rt.orders[(a.order + 1) % rt.orders.length]?.merchantUid;
  const target = a.preempt === 'other_order' && next && next !== merchantUid ? next : `${rt.eventId}.${token11()}`;
  return rt.stack.interceptor.route({
    kind: a.preempt,
    merchantUid: target,
    onForged(body, status, answer) {
      if (status >= 500 && status !== 503) rt.anomalies.push({ invariant: '7', message: `a forged confirm ${JSON.stringify(body)} answered ${status}: ${answer.slice(0, 200)}` });
      const muid = String(body['merchant_uid']);
      note(rt, `forged confirm just before PortOne's (pay #${a.id}): ${JSON.stringify(body)} (${orderOf(rt, muid)}) → ${status} ${codeOf(answer)}`);
    },
  });
}

/** Opens the payment window of a pay action (the simulator plays the buyer, PortOne and the PG). */
export async function payWindow(rt: ScenarioRuntime, a: PayAction): Promise<PaymentWindowResult | null> {
  const order = rt.orders[a.order];
  if (!order?.merchantUid) {
    note(rt, `pay #${a.id}: order #${a.order} does not exist (${order?.refused ?? 'not created'}), skipped`);
    return null;
  }
  const w = a.webhooks;
  const faults: Faults = {
    webhook_loss: w.lost ? 1 : 0,
    webhook_duplicates: w.duplicates,
    webhook_delay_ms: w.delayMs,
    webhook_reorder: w.reorder,
    webhook_format: w.form ? 'form' : 'json',
    webhook_before_return: w.beforeReturn,
    ...(a.flipMs > 0 ? { failed_then_paid_ms: a.flipMs } : {}),
  };
  try {
    const res = await rt.stack.sim.pay({
      merchant_uid: order.merchantUid,
      amount: order.amount + a.amountDelta,
      ...(a.confirm ? { confirm_url: confirmUrlFor(rt, a, order.merchantUid) } : {}),
      notice_url: rt.stack.noticeUrl,
      outcome: a.outcome,
      buyer_delay_ms: a.buyerDelayMs,
      faults,
    });
    const c = res.confirm;
    const confirm = c === null ? 'no confirm' : `confirm ${c.status}${c.timed_out ? ' (timed out)' : ''} ${c.status === 200 ? '' : codeOf(JSON.stringify(c.body ?? ''))}`.trim();
    note(rt, `pay #${a.id} order #${a.order} (${a.label}): ${res.payment.imp_uid} ₩${res.payment.amount} → ${res.payment.status}; ${confirm}`);
    return res;
  } catch (error) {
    note(rt, `pay #${a.id} order #${a.order} (${a.label}): the payment window failed: ${(error as Error).message}`);
    return null;
  }
}

async function cancelAtPortOne(rt: ScenarioRuntime, a: CancelAction): Promise<void> {
  const res = await rt.pays.get(a.pay);
  if (!res) return;
  const imp = res.payment.imp_uid;
  // A payment the PG turns paid later: wait for it (bounded).
  const until = performance.now() + 5_000;
  while (rt.stack.sim.getPayment(imp)?.status === 'failed' && performance.now() < until) await sleep(100);
  if (rt.stack.sim.getPayment(imp)?.status !== 'paid') return;
  await sleep(a.afterMs);
  try {
    const p = rt.stack.sim.cancelPayment(imp, { reason: 'chaos: cancelled at PortOne' });
    note(rt, `cancel at PortOne: ${imp} (pay #${a.pay}) → ${p.status}, ₩${p.cancel_amount} returned`);
  } catch (error) {
    note(rt, `cancel at PortOne: ${imp} (pay #${a.pay}) refused: ${(error as Error).message}`);
  }
}

async function resend(rt: ScenarioRuntime, a: ResendAction): Promise<void> {
  const known = scenarioPayments(rt);
  const p = known[a.payment % Math.max(1, known.length)];
  if (!p) {
    note(rt, 'resend webhook: no payment yet, skipped');
    return;
  }
  try {
    await rt.stack.sim.sendWebhook(p.imp_uid, a.claim ?? undefined);
    note(rt, `PortOne resent the webhook of ${p.imp_uid} (${orderOf(rt, p.merchant_uid)}, really ${p.status}) claiming ${a.claim ?? p.status}`);
  } catch (error) {
    note(rt, `resend webhook of ${p.imp_uid} failed: ${(error as Error).message}`);
  }
}

async function forgeWebhook(rt: ScenarioRuntime, a: ForgedWebhookAction): Promise<void> {
  const { imp, owner } = resolveImp(rt, a.imp);
  const muid = resolveMerchant(rt, a.merchant, owner);
  const body = { imp_uid: imp, merchant_uid: muid, status: a.status };
  const res = await send(rt, '/portone/v1/webhook', body, a.form);
  note(rt, `forged webhook ${JSON.stringify(body)} (${a.imp.kind === 'made_up' || owner === null ? 'made-up imp' : `imp of ${orderOf(rt, owner)}`}, ${orderOf(rt, muid)}${a.form ? ', form' : ''}) → ${res.status} ${codeOf(res.text)}`);
}

async function forgeConfirm(rt: ScenarioRuntime, a: ForgedConfirmAction): Promise<void> {
  const { imp, owner } = resolveImp(rt, a.imp);
  const muid = resolveMerchant(rt, a.merchant, owner);
  const order = rt.orders.find((o) => o.merchantUid === muid);
  const right = order?.amount ?? 10_000;
  const body: Record<string, unknown> = { imp_uid: imp, merchant_uid: muid };
  if (a.amount === 'right') body['amount'] = right;
  if (a.amount === 'tampered') body['amount'] = Math.max(1, right - 1_000);
  const res = await send(rt, '/portone/v1/confirm', body, false);
  note(rt, `forged confirm ${JSON.stringify(body)} (${a.imp.kind === 'made_up' || owner === null ? 'made-up imp' : `imp of ${orderOf(rt, owner)}`}, ${orderOf(rt, muid)}) → ${res.status} ${codeOf(res.text)}`);
}

/** Carries out one action; never throws (a failure is logged). */
export async function perform(rt: ScenarioRuntime, action: Action): Promise<void> {
  try {
    switch (action.kind) {
      case 'pay':
        await rt.pays.get(action.id);
        return;
      case 'cancel_at_portone':
        return await cancelAtPortOne(rt, action);
      case 'resend_webhook':
        return await resend(rt, action);
      case 'forge_webhook':
        return await forgeWebhook(rt, action);
      case 'forge_confirm':
        return await forgeConfirm(rt, action);
      case 'rest_outage':
        note(rt, `PortOne REST ${action.mode === 'down' ? 'down' : `failing ${Math.round(action.rate * 100)}%`} for ${action.durationMs} ms`);
        await rt.stack.restOutage(action.mode, action.rate, action.durationMs);
        note(rt, 'PortOne REST back');
        return;
      case 'kill_worker':
        note(rt, 'SIGKILL the worker');
        await rt.stack.killWorker(action.downMs);
        note(rt, `worker restarted (after ${action.downMs} ms down)`);
        return;
      case 'flush_redis':
        await rt.stack.flushRedis();
        note(rt, 'FLUSHALL Redis');
        return;
      case 'restart_postgres':
        note(rt, 'stopping Postgres (fast: every session terminated)');
        await rt.stack.restartPostgres(action.downMs);
        note(rt, `Postgres back (after ${action.downMs} ms down)`);
        return;
    }
  } catch (error) {
    note(rt, `${action.kind} failed: ${(error as Error).message}`);
  }
}
