/**
 * Carries out a scenario's actions against the stack: genuine payments through the simulator,
 * PortOne-side cancels and resent webhooks, forged webhooks and confirms sent straight to the API,
 * and the global faults. Every action writes one line to the scenario's log (what it sent, what it
 * got), which is what a failure report shows.
 */
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { signedHeaders, type Faults, type PaymentWindowResult, type SimPayment } from '@dropgate/portone-sim';
import type { ChaosStack } from './stack.ts';
import type { Action, CancelAction, ExtendAction, ForgedConfirmAction, ForgedWebhookAction, ImpRef, MerchantRef, PayAction, PortOneApi, ResendAction } from './scenario.ts';

/** An order as created through the storefront (null fields when creation was refused). */
export interface CreatedOrder {
  index: number;
  merchantUid: string | null;
  amount: number;
  /** The buyer's proof of the order, sent with manual confirmations (null when creation was refused). */
  orderToken: string | null;
  /** Why it was not created. */
  refused: string | null;
  /**
   * With reservations: when its reservation lapses as its buyer knows it (epoch ms, from the order's
   * and each extension's `hold_expires_at`); null when not known (an extension whose answer was lost
   * may have renewed it).
   */
  holdExpiresAt: number | null;
  /** Extensions answered 200 so far; null when not known (an answer was lost). */
  extensions: number | null;
}

/** MAX_RESERVATION_EXTENSIONS: a reservation is extended at most this many times. */
export const MAX_EXTENSIONS = 3;

/** An answer of the API that breaks "bad input changes nothing, never a 500" (or a dead process). */
export interface Anomaly {
  invariant: string;
  message: string;
}

export interface ScenarioRuntime {
  readonly stack: ChaosStack;
  readonly api: PortOneApi;
  readonly eventId: string;
  /** With reservations (hold_at "order"): the reservation TTL (ms); null without. */
  readonly reservationTtlMs: number | null;
  readonly orders: readonly CreatedOrder[];
  /** performance.now() when the timeline started. */
  readonly t0: number;
  readonly log: string[];
  readonly anomalies: Anomaly[];
  /** Payment windows by pay action id, as they finish. */
  readonly pays: Map<number, Promise<PaymentWindowResult | null>>;
  /** V2 manual confirmation: the paymentToken each attempt's window gave the browser, by attempt (`v2.<transactionId>`). */
  readonly tokens: Map<string, string>;
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

/**
 * Answers a path may give besides 503, each with its code: manual confirmation relays PortOne's state,
 * `PORTONE_REFUSED` 502 (PortOne answered with an error) and `PAYMENT_PENDING` 504 (PortOne did not
 * answer in time: the hold stays until expiry asks PortOne), both documented in the README's API.
 */
const GATEWAY_ANSWERS: Readonly<Record<string, ReadonlyArray<readonly [number, string]>>> = {
  '/portone/v2/manual-confirm': [[502, 'PORTONE_REFUSED'], [504, 'PAYMENT_PENDING']],
};

/** Sends a request straight to the API; a 500 (or any 5xx but 503 and the path's gateway answers) is an anomaly. */
async function send(
  rt: ScenarioRuntime, path: string, body: Record<string, unknown>, form: boolean, sign?: (payload: string) => Record<string, string>,
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const payload = form
    ? new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString()
    : JSON.stringify(body);
  const headers = { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json', ...extraHeaders, ...sign?.(payload) };
  try {
    const res = await fetch(`${rt.stack.apiUrl}${path}`, { method: 'POST', headers, body: payload, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    const gateway = (GATEWAY_ANSWERS[path] ?? []).some(([status, code]) => status === res.status && codeOf(text) === code);
    if (res.status >= 500 && res.status !== 503 && !gateway) {
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
  if (a.afterLapseMs !== undefined && order.holdExpiresAt !== null) {
    // The buyer comes back to pay only after the reservation lapsed (as they know it).
    await sleep(order.holdExpiresAt + a.afterLapseMs - Date.now());
    note(rt, `pay #${a.id} order #${a.order}: the buyer opens the payment window ${a.afterLapseMs} ms after the reservation lapsed`);
  }
  if (rt.api !== 'v1') return payWindowV2(rt, a, order.merchantUid, order.amount);
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
      ...(a.currency ? { currency: a.currency } : {}),
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

/** The faults of a V2 payment: V1's, except that `form` means the store's legacy (2024-01-01) webhook version. */
function v2Faults(a: PayAction): Faults {
  const w = a.webhooks;
  return {
    webhook_loss: w.lost ? 1 : 0,
    webhook_duplicates: w.duplicates,
    webhook_delay_ms: w.delayMs,
    webhook_reorder: w.reorder,
    webhook_before_return: w.beforeReturn,
    ...(a.flipMs > 0 ? { failed_then_paid_ms: a.flipMs } : {}),
  };
}

/** Standard Webhooks headers that do not verify: signed with a secret of the forger's own. */
const badSignature = (payload: string) => signedHeaders(`whsec_${randomBytes(24).toString('base64')}`, `msg_${randomBytes(9).toString('base64url')}`, payload);

/**
 * A forged V2 confirm call sent straight to the API (no valid signature: dropgate must answer 401
 * and change nothing). `label` says who sent it, for the log.
 */
async function forgeSignedConfirm(rt: ScenarioRuntime, how: 'bad_signature' | 'missing_signature', paymentId: string, transactionId: string, amount: number | null, label: string): Promise<void> {
  const body = {
    type: 'Transaction.Confirm', timestamp: new Date().toISOString(),
    data: { paymentId, storeId: 'store-forged', transactionId, ...(amount !== null ? { totalAmount: amount } : {}) },
  };
  const res = await send(rt, '/portone/v2/confirm', body, false, how === 'bad_signature' ? badSignature : undefined);
  // 0: no answer (the API is down, killed on purpose): nothing to judge.
  if (res.status !== 401 && res.status !== 0) rt.anomalies.push({ invariant: '7', message: `a V2 confirm with a ${how.replace('_', ' ')} (${paymentId}) was answered ${res.status}, not 401: ${res.text.slice(0, 200)}` });
  note(rt, `${label}: V2 confirm, ${how.replace('_', ' ')}, ${paymentId} (${orderOf(rt, paymentId)}) ₩${amount ?? '-'} → ${res.status} ${codeOf(res.text)}`);
}

/**
 * A buyer's manual confirmation, straight to the API, with the order's token: the buyer's own, or a
 * forgery by the buyer of the order it names (who has that token; a stranger without it is refused
 * before anything is counted, held or asked, which the API's tests prove).
 */
async function manualConfirm(rt: ScenarioRuntime, paymentId: string, token: string, amount: number): Promise<{ status: number; text: string }> {
  const orderToken = rt.orders.find((o) => o.merchantUid === paymentId)?.orderToken ?? '';
  return send(rt, '/portone/v2/manual-confirm', { payment_id: paymentId, payment_token: token, total_amount: amount }, false, undefined, { authorization: `Bearer ${orderToken}` });
}

/**
 * A V2 payment window. `v2`: PortOne sends the signed confirm call (unless the PG cannot), then the
 * PG answers. `v2-manual`: the window hands the browser a paymentToken, which it posts to dropgate
 * after the buyer's time (never, when the buyer abandons or `confirm` is off); a pre-empting forged
 * request comes just before PortOne's confirm (a bad signature) or the browser's (this token,
 * another order or a tampered amount).
 */
async function payWindowV2(rt: ScenarioRuntime, a: PayAction, merchantUid: string, amount: number): Promise<PaymentWindowResult | null> {
  const manual = rt.api === 'v2-manual';
  const next = rt.orders[(a.order + 1) % rt.orders.length]?.merchantUid;
  const target = a.preempt === 'other_order' && next && next !== merchantUid ? next : a.preempt === 'made_up_order' ? `${rt.eventId}.${token11()}` : merchantUid;
  const what = `pay #${a.id} order #${a.order} (${a.label}, ${rt.api})`;
  try {
    if (!manual && a.confirm && a.preempt !== 'none') {
      await forgeSignedConfirm(rt, 'bad_signature', target, randomUUID(), a.preempt === 'tampered' ? Math.max(1, amount - 1_000) : amount, `forged confirm just before PortOne's (pay #${a.id})`);
    }
    const res = await rt.stack.sim.payV2({
      payment_id: merchantUid,
      amount: amount + a.amountDelta,
      ...(a.currency ? { currency: a.currency } : {}),
      mode: manual ? 'manual' : 'confirm',
      ...(!manual && a.confirm ? { confirm_url: rt.stack.v2ConfirmUrl } : {}),
      webhook_url: rt.stack.v2WebhookUrl,
      outcome: a.outcome,
      ...(!manual && a.buyerDelayMs > 0 ? { buyer_delay_ms: a.buyerDelayMs } : {}),
      webhook_version: a.webhooks.form ? '2024-01-01' : '2024-04-25',
      faults: v2Faults(a),
    });
    const imp = res.payment.imp_uid;
    if (!manual) {
      const c = res.confirm;
      const confirm = c === null ? 'no confirm' : `confirm ${c.status}${c.timed_out ? ' (timed out)' : ''} ${c.status === 200 ? '' : codeOf(JSON.stringify(c.body ?? ''))}`.trim();
      note(rt, `${what}: ${imp} ₩${res.payment.amount} → ${res.payment.status}; ${confirm}`);
      return { payment: res.payment, confirm: res.confirm };
    }
    const token = res.payment_token ?? '';
    rt.tokens.set(imp, token);
    note(rt, `${what}: window ${imp} ₩${res.payment.amount} → ${res.payment.status}, token given to the browser`);
    if (a.outcome === 'abandoned' || !a.confirm) {
      note(rt, `${what}: the browser never posts the token`);
      return { payment: rt.stack.sim.getPayment(imp) ?? res.payment, confirm: null };
    }
    if (a.preempt !== 'none') {
      const forgedAmount = a.preempt === 'tampered' ? Math.max(1, amount - 1_000) : amount;
      const f = await manualConfirm(rt, target, token, forgedAmount);
      note(rt, `forged confirm just before PortOne's (pay #${a.id}): manual confirmation of ${target} (${orderOf(rt, target)}) with ${imp}'s token ₩${forgedAmount} → ${f.status} ${codeOf(f.text)}`);
    }
    await sleep(a.buyerDelayMs);
    const m = await manualConfirm(rt, merchantUid, token, amount + a.amountDelta);
    const after = rt.stack.sim.getPayment(imp) ?? res.payment;
    note(rt, `${what}: the browser posted the token ₩${amount + a.amountDelta} → ${m.status} ${m.status === 200 ? 'paid' : codeOf(m.text)}; PortOne says ${after.status}`);
    return { payment: after, confirm: null };
  } catch (error) {
    note(rt, `${what}: the payment window failed: ${(error as Error).message}`);
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
    const amount = a.part ? Math.max(1, Math.floor((rt.stack.sim.getPayment(imp)?.amount ?? 0) * a.part)) : undefined;
    const p = rt.stack.sim.cancelPayment(imp, { reason: `chaos: ${a.part ? 'part ' : ''}cancelled at PortOne`, ...(amount ? { amount } : {}) });
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

const V2_TYPES: Readonly<Record<string, string>> = {
  paid: 'Transaction.Paid', cancelled: 'Transaction.Cancelled', failed: 'Transaction.Failed', ready: 'Transaction.Ready', refunded: 'Transaction.Refunded', '': 'Transaction.',
};

/**
 * A V2 webhook not from PortOne (bad or missing signature: 401, nothing changes), or a validly signed
 * one naming another order's payment or a made-up transaction (a hint: dropgate asks PortOne).
 */
async function forgeWebhookV2(rt: ScenarioRuntime, a: ForgedWebhookAction): Promise<void> {
  const { imp, owner } = resolveImp(rt, a.imp);
  const muid = resolveMerchant(rt, a.merchant, owner);
  const transactionId = imp.startsWith('v2.') ? imp.slice(3) : randomUUID();
  const type = V2_TYPES[a.status] ?? 'Transaction.Paid';
  const body = a.form
    ? { payment_id: muid, tx_id: transactionId, status: type.replace(/^Transaction\./, '') }
    : { type, timestamp: new Date().toISOString(), data: { paymentId: muid, storeId: rt.stack.sim.storeId, transactionId } };
  const signature = a.signature ?? 'bad';
  const sign = signature === 'valid'
    ? (payload: string) => signedHeaders(rt.stack.sim.webhookSecret, `msg_${randomBytes(9).toString('base64url')}`, payload)
    : signature === 'bad' ? badSignature : undefined;
  const res = await send(rt, '/portone/v2/webhook', body, false, sign);
  if (signature !== 'valid' && res.status !== 401 && res.status !== 0) {
    rt.anomalies.push({ invariant: '7', message: `a V2 webhook with a ${signature} signature ${JSON.stringify(body)} was answered ${res.status}, not 401: ${res.text.slice(0, 200)}` });
  }
  note(rt, `forged webhook (V2, ${signature} signature${a.form ? ', legacy body' : ''}) ${JSON.stringify(body)} (${a.imp.kind === 'made_up' || owner === null ? 'made-up transaction' : `attempt of ${orderOf(rt, owner)}`}, ${orderOf(rt, muid)}) → ${res.status} ${codeOf(res.text)}`);
}

/**
 * A forged V2 confirm: a signed confirm call without a valid signature, or a manual confirmation
 * with another attempt's token (or a made-up one) or a wrong amount.
 */
async function forgeConfirmV2(rt: ScenarioRuntime, a: ForgedConfirmAction): Promise<void> {
  const { imp, owner } = resolveImp(rt, a.imp);
  const muid = resolveMerchant(rt, a.merchant, owner);
  const order = rt.orders.find((o) => o.merchantUid === muid);
  const right = order?.amount ?? 10_000;
  const amount = a.amount === 'tampered' ? Math.max(1, right - 1_000) : right;
  const how = a.v2 ?? 'bad_signature';
  const whose = a.imp.kind === 'made_up' || owner === null ? 'made-up' : `attempt of ${orderOf(rt, owner)}`;
  if (how === 'bad_signature' || how === 'missing_signature') {
    await forgeSignedConfirm(rt, how, muid, imp.startsWith('v2.') ? imp.slice(3) : randomUUID(), a.amount === 'missing' ? null : amount, `forged confirm (${whose})`);
    return;
  }
  // The token of the attempt named (a made-up one when there is none); with a wrong amount, the
  // order's own latest token when the attempt named is another order's.
  let token = rt.tokens.get(imp) ?? `ptk_${randomBytes(24).toString('base64url')}`;
  let forgedAmount = amount;
  if (how === 'manual_wrong_amount') {
    const own = [...rt.tokens].findLast(([k]) => scenarioPayments(rt).some((p) => p.imp_uid === k && p.merchant_uid === muid));
    if (own) token = own[1];
    forgedAmount = right + (a.amount === 'tampered' ? -1_000 : 1);
  }
  const res = await manualConfirm(rt, muid, token, Math.max(1, forgedAmount));
  note(rt, `forged confirm (${how.replace(/_/g, ' ')}, token of ${whose}): manual confirmation of ${muid} (${orderOf(rt, muid)}) ₩${Math.max(1, forgedAmount)} → ${res.status} ${codeOf(res.text)}`);
}

async function forgeWebhook(rt: ScenarioRuntime, a: ForgedWebhookAction): Promise<void> {
  if (rt.api !== 'v1') return forgeWebhookV2(rt, a);
  const { imp, owner } = resolveImp(rt, a.imp);
  const muid = resolveMerchant(rt, a.merchant, owner);
  const body = { imp_uid: imp, merchant_uid: muid, status: a.status };
  const res = await send(rt, '/portone/v1/webhook', body, a.form);
  note(rt, `forged webhook ${JSON.stringify(body)} (${a.imp.kind === 'made_up' || owner === null ? 'made-up imp' : `imp of ${orderOf(rt, owner)}`}, ${orderOf(rt, muid)}${a.form ? ', form' : ''}) → ${res.status} ${codeOf(res.text)}`);
}

async function forgeConfirm(rt: ScenarioRuntime, a: ForgedConfirmAction): Promise<void> {
  if (rt.api !== 'v1') return forgeConfirmV2(rt, a);
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

/**
 * The buyer extends the order's reservation (`POST /orders/:merchant_uid/extend` with the order token),
 * at its time or after it lapsed. What an answer must be: a renewal only of a reservation that is
 * still live (sent before the `hold_expires_at` the buyer was last told) and at most
 * MAX_EXTENSIONS times in the order's life, for the reservation TTL from the request on; otherwise
 * 409 NOT_EXTENDABLE (lapsed, extended as often as allowed, a payment under way, paid, ended), or
 * 503 while Redis or Postgres cannot answer. An answer lost (the API killed, a 503 after Redis may
 * still have run the renewal) makes the buyer's knowledge of the expiry uncertain: not checked after.
 */
async function extendReservation(rt: ScenarioRuntime, a: ExtendAction): Promise<void> {
  const order = rt.orders[a.order];
  if (!order?.merchantUid || !order.orderToken) {
    note(rt, `extend order #${a.order}: the order does not exist (${order?.refused ?? 'not created'}), skipped`);
    return;
  }
  if (a.afterLapseMs !== undefined) {
    if (order.holdExpiresAt === null) {
      note(rt, `extend order #${a.order} after it lapsed: when it lapses is not known, skipped`);
      return;
    }
    await sleep(order.holdExpiresAt + a.afterLapseMs - Date.now());
  }
  const knownExp = order.holdExpiresAt;
  const sentAt = Date.now();
  const res = await send(rt, `/orders/${encodeURIComponent(order.merchantUid)}/extend`, {}, false, undefined, { authorization: `Bearer ${order.orderToken}` });
  const code = codeOf(res.text);
  const lapsed = knownExp !== null ? sentAt - knownExp : null;
  const when = lapsed === null ? 'its expiry unknown' : lapsed > 0 ? `${lapsed} ms after it lapsed` : `${-lapsed} ms before it lapses`;
  if (res.status === 200) {
    const body = JSON.parse(res.text) as { hold_expires_at?: string; extensions_left?: number };
    const exp = body.hold_expires_at ? Date.parse(body.hold_expires_at) : NaN;
    note(rt, `extend order #${a.order} (${when}) → 200, until +${Math.round(exp - sentAt)} ms, ${body.extensions_left} left`);
    // 5 ms for Date's rounding between the two processes' clocks (one machine, one clock).
    if (lapsed !== null && lapsed > 5) {
      rt.anomalies.push({ invariant: 'reservation', message: `order #${a.order} (${order.merchantUid}): its reservation was extended ${lapsed} ms after it lapsed (hold_expires_at ${new Date(knownExp!).toISOString()}); a lapsed reservation is not extendable` });
    }
    if (order.extensions !== null) {
      order.extensions++;
      if (order.extensions > MAX_EXTENSIONS) rt.anomalies.push({ invariant: 'reservation', message: `order #${a.order} (${order.merchantUid}): its reservation was extended ${order.extensions} times (at most ${MAX_EXTENSIONS})` });
      else if (body.extensions_left !== undefined && body.extensions_left > MAX_EXTENSIONS - order.extensions) {
        rt.anomalies.push({ invariant: 'reservation', message: `order #${a.order} (${order.merchantUid}): extension ${order.extensions} says ${body.extensions_left} left (at most ${MAX_EXTENSIONS - order.extensions})` });
      }
    }
    if (!(exp >= sentAt + (rt.reservationTtlMs ?? 0) - 5)) {
      rt.anomalies.push({ invariant: 'reservation', message: `order #${a.order} (${order.merchantUid}): extended until ${body.hold_expires_at}, less than the reservation TTL from the request (${new Date(sentAt).toISOString()})` });
    }
    order.holdExpiresAt = Number.isFinite(exp) ? exp : null;
    return;
  }
  note(rt, `extend order #${a.order} (${when}) → ${res.status} ${code}`);
  if (res.status === 409 && code === 'NOT_EXTENDABLE') return;
  // Lost or not decided: it may have been renewed all the same.
  order.holdExpiresAt = null;
  order.extensions = null;
  if (res.status !== 0 && res.status !== 503 && res.status < 500) {
    rt.anomalies.push({ invariant: 'reservation', message: `extending order #${a.order} (${order.merchantUid}) answered ${res.status}: ${res.text.slice(0, 200)} (200, 409 NOT_EXTENDABLE or 503 expected)` });
  }
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
      case 'pause_redis':
        note(rt, `CLIENT PAUSE ${action.ms} ALL on Redis`);
        await rt.stack.pauseRedis(action.ms);
        note(rt, 'Redis pause over');
        return;
      case 'stall_worker': {
        if (action.trigger === 'now') {
          note(rt, `SIGSTOP the worker for ${action.ms} ms`);
          note(rt, (await rt.stack.stallWorker(action.ms)) ? `worker resumed (SIGCONT after ${action.ms} ms)` : 'the worker was not running: not stalled');
          return;
        }
        note(rt, `the worker is SIGSTOPped for ${action.ms} ms when it next asks PortOne about a payment`);
        const r = await rt.stack.stallWorkerOnLookup(action.ms, 3_000);
        note(rt, r === 'stalled' ? `worker resumed (SIGCONT after ${action.ms} ms, stopped while it waited for PortOne's answer)` : r === 'no-lookup' ? 'no payment lookup within 3 s: not stalled' : 'the worker was not running: not stalled');
        return;
      }
      case 'kill_api':
        note(rt, 'SIGKILL the API');
        await rt.stack.killApi(action.downMs);
        note(rt, `API restarted (after ${action.downMs} ms down)`);
        return;
      case 'extend_reservation':
        return await extendReservation(rt, action);
    }
  } catch (error) {
    note(rt, `${action.kind} failed: ${(error as Error).message}`);
  }
}
