/**
 * PortOne V2: the signed confirm call, signed webhooks, and manual confirmation (수동 승인).
 *
 * Confirm and webhooks are Standard Webhooks signed. Their bodies are kept as the raw string that
 * arrived (this plugin parses no JSON before the check) and verified with `@portone/server-sdk` against
 * every secret in PORTONE_WEBHOOK_SECRET; a bad, missing, stale or re-serialised signature is answered
 * 401 before anything is read or stored. After that they take the V1 paths: the same hold script,
 * budget, shedding and outcome queueing. V2's paymentId is the order's merchant_uid, and each attempt
 * (transactionId) is the "payment" dropgate holds for and settles: its key is `v2.<transactionId>`
 * (see PaymentGateway), so a confirm's answer is remembered per attempt and bound to the order.
 *
 * Manual confirmation is called by the buyer's browser: hostile input, strict schema, and the order's
 * token (`Authorization: Bearer <order_token>`, or the admin token) before anything else. dropgate asks
 * PortOne for the payment first (its current attempt and amount), holds for that attempt, then asks
 * PortOne to approve it naming the attempt (`txId`), the order's amount and currency, and our store.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import Schema from 'typebox/schema';
import type { Static } from 'typebox';
import { orders as ordersRepo } from '@dropgate/db';
import { DomainError, REFUSAL_REASONS, bearerToken, eventIdOf, type RefusalCode } from '@dropgate/domain';
import { v2PaymentKey, verifyWebhook, type ConfirmRefusal, type PortOneV2Client } from '@dropgate/portone';
import {
  ConfirmApproved, ErrorBody, ManualConfirmBody, ManualConfirmPaid, V2ConfirmPayload, V2ConfirmPayloadLegacy, V2ConfirmRefused,
  V2WebhookAccepted, V2WebhookPayload, V2WebhookPayloadLegacy,
} from '../schemas.ts';
import { decideConfirm, noteDecision, type ConfirmDeps } from '../lib/confirm.service.ts';
import { toHttpError } from '../plugins/errors.plugin.ts';
import { isAdminToken, orderTokenMatches } from '../lib/secrets.ts';
import { REFUSAL_STATUS } from '../lib/http-errors.ts';
import type { AppDeps } from '../deps.ts';

/** What the V1 plugin shares with this one. */
export interface PortOneShared {
  /** Confirms in flight, V1 and V2 together. */
  gate: { inFlight: number };
  confirmDeps: ConfirmDeps;
  /** Queues an outcome job for a payment (see portone.routes.ts); true for a duplicate. */
  queueOutcome: (eventId: string, merchantUid: string, impUid: string, hint: string) => Promise<boolean>;
  budgetMs: number;
  /** The reserve kept from the budget for a confirm decided now (reserveMs in portone.routes.ts). */
  marginMs: () => number;
}

/** What `verified` returns once it has answered the request itself. */
const ANSWERED = Symbol('answered');

/** Body limit of signed requests: PortOne's are a few hundred bytes. */
const SIGNED_BODY_LIMIT = 16 * 1024;
/** Signed webhook ids are remembered this long: past PortOne's last retry (about 5.7 hours after the first). */
const DELIVERY_TTL_SECONDS = 24 * 3600;
const WEBHOOK_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Webhook types dropgate acts on, with the hint queued for the worker (which re-fetches the payment). */
const WEBHOOK_HINTS: Readonly<Record<string, string>> = {
  'Transaction.Paid': 'paid',
  'Transaction.Failed': 'failed',
  'Transaction.Cancelled': 'cancelled',
  'Transaction.PartialCancelled': 'partial_cancelled',
  'Transaction.Ready': 'ready',
  'Transaction.VirtualAccountIssued': 'virtual_account_issued',
  'Transaction.PayPending': 'pay_pending',
  'Transaction.CancelPending': 'cancel_pending',
};
/** Metric labels stay the V1 closed set. */
const HINT_LABELS: Readonly<Record<string, string>> = {
  paid: 'paid', failed: 'failed', cancelled: 'cancelled', partial_cancelled: 'cancelled',
  ready: 'ready', virtual_account_issued: 'ready', pay_pending: 'ready',
};

/**
 * Manual confirmations of one order PortOne is asked about, per window. A genuine buyer needs one (a
 * few after a declined card); each one costs one or two PortOne calls, so one order's merchant_uid
 * cannot be made to cost more than this a minute.
 */
export const MANUAL_CONFIRMS_PER_ORDER = 10;
const MANUAL_CONFIRM_WINDOW_MS = 60_000;

/** How each PortOne refusal of a manual confirmation is told to the buyer. */
const MANUAL_REFUSALS: Readonly<Record<ConfirmRefusal, { status: number; code: string; message: string }>> = {
  INVALID_PAYMENT_TOKEN: { status: 400, code: 'PAYMENT_TOKEN_INVALID', message: '결제 인증 정보가 올바르지 않습니다. 다시 결제해 주세요' },
  INFORMATION_MISMATCH: { status: 409, code: 'AMOUNT_MISMATCH', message: REFUSAL_REASONS.AMOUNT_MISMATCH },
  PG_PROVIDER: { status: 402, code: 'PAYMENT_DECLINED', message: '결제가 승인되지 않았습니다' },
  ALREADY_PAID: { status: 409, code: 'ALREADY_PAID', message: REFUSAL_REASONS.ALREADY_PAID },
  ALREADY_PAID_OR_WAITING: { status: 409, code: 'PAYMENT_PENDING', message: '결제 결과를 확인하고 있습니다. 주문 상태를 확인해 주세요' },
  PAYMENT_NOT_FOUND: { status: 404, code: 'PAYMENT_NOT_FOUND', message: '결제 정보를 찾을 수 없습니다' },
  FORBIDDEN: { status: 502, code: 'PORTONE_REFUSED', message: '결제사가 요청을 거절했습니다. 잠시 후 다시 시도해 주세요' },
  UNAUTHORIZED: { status: 502, code: 'PORTONE_REFUSED', message: '결제사가 요청을 거절했습니다. 잠시 후 다시 시도해 주세요' },
  INVALID_REQUEST: { status: 502, code: 'PORTONE_REFUSED', message: '결제사가 요청을 거절했습니다. 잠시 후 다시 시도해 주세요' },
  OTHER: { status: 502, code: 'PORTONE_REFUSED', message: '결제사가 요청을 거절했습니다. 잠시 후 다시 시도해 주세요' },
};

type ConfirmFields = { paymentId: string; transactionId: string; totalAmount: number | null; storeId: string | null };

/** The confirm call's fields from either payload version, or null when it is neither. */
function confirmFields(payload: unknown): ConfirmFields | null {
  if (Schema.Check(V2ConfirmPayload, payload)) {
    const d = (payload as Static<typeof V2ConfirmPayload>).data;
    return { paymentId: d.paymentId, transactionId: d.transactionId, totalAmount: d.totalAmount ?? null, storeId: d.storeId ?? null };
  }
  // A 2024-01-01 webhook (it has a `status`) is signed the same way: replayed here it is not a confirm
  // (attack round 26A: a signed Transaction.Failed body was approved as a confirm without an amount).
  if (Schema.Check(V2ConfirmPayloadLegacy, payload) && !Object.hasOwn(payload as object, 'status')) {
    const p = payload as Static<typeof V2ConfirmPayloadLegacy>;
    return { paymentId: p.payment_id, transactionId: p.tx_id, totalAmount: p.total_amount ?? null, storeId: p.store_id ?? null };
  }
  return null;
}

type WebhookFields = { hint: string | null; paymentId: string | null; transactionId: string | null; storeId: string | null };

/** A webhook's fields from either payload version; hint null: a type dropgate does not act on. */
function webhookFields(payload: unknown): WebhookFields | null {
  if (Schema.Check(V2WebhookPayload, payload)) {
    const p = payload as Static<typeof V2WebhookPayload>;
    return { hint: WEBHOOK_HINTS[p.type] ?? null, paymentId: p.data?.paymentId ?? null, transactionId: p.data?.transactionId ?? null, storeId: p.data?.storeId ?? null };
  }
  if (Schema.Check(V2WebhookPayloadLegacy, payload)) {
    const p = payload as Static<typeof V2WebhookPayloadLegacy>;
    return { hint: WEBHOOK_HINTS[`Transaction.${p.status}`] ?? null, paymentId: p.payment_id, transactionId: p.tx_id, storeId: p.store_id ?? null };
  }
  return null;
}

export const portoneV2Routes: FastifyPluginAsyncTypebox<{ deps: AppDeps; shared: PortOneShared }> = async (app, { deps, shared }) => {
  const { config, metrics, store, catalog } = deps;
  const secrets = config.portone.webhookSecrets;
  const ourStore = config.portone.v2StoreId;
  const foreignStore = (storeId: string | null) => ourStore !== undefined && storeId !== null && storeId !== ourStore;

  /**
   * Verifies the raw body. On failure answers (401 for the signature, 400 for a signed body that is
   * not JSON) with the endpoint's error body and returns ANSWERED (not null: a signed body `null`
   * parses to null, and was left unanswered for good, attack round 26A).
   */
  const verified = async (
    endpoint: 'confirm' | 'webhook', request: FastifyRequest, reply: FastifyReply, body: (failure: 'signature' | 'not_json') => unknown,
  ): Promise<unknown> => {
    const raw = typeof request.body === 'string' ? request.body : '';
    const result = await verifyWebhook(secrets, raw, request.headers);
    if (result.ok) return result.payload;
    metrics.signatureFailures.inc({ endpoint, reason: result.reason.toLowerCase() });
    if (result.reason === 'NOT_JSON') await reply.status(400).send(body('not_json'));
    else await reply.status(401).send(body('signature'));
    return ANSWERED;
  };

  // Signed requests: the body stays the raw string it arrived as, whatever its content type.
  await app.register(async (signed) => {
    signed.removeAllContentTypeParsers();
    signed.addContentTypeParser('*', { parseAs: 'string', bodyLimit: SIGNED_BODY_LIMIT }, (_request, body, done) => done(null, body));

    const refuseV2 = (request: FastifyRequest, reply: FastifyReply, code: RefusalCode) => {
      request.confirmOutcome = code;
      return reply.status(REFUSAL_STATUS[code]).send({ errorMessage: REFUSAL_REASONS[code], code });
    };

    signed.post(
      '/portone/v2/confirm',
      {
        bodyLimit: SIGNED_BODY_LIMIT,
        errorHandler: (error: FastifyError, request, reply) => {
          const http = toHttpError(error);
          if (http.statusCode >= 500) {
            request.log.error({ err: error }, 'V2 confirm failed');
            request.confirmOutcome = 'NOT_READY';
            return reply.status(503).send({ errorMessage: REFUSAL_REASONS.NOT_READY, code: 'NOT_READY' });
          }
          request.confirmOutcome = 'BAD_REQUEST';
          return reply.status(http.statusCode).send({ errorMessage: REFUSAL_REASONS.BAD_REQUEST, code: http.code });
        },
        schema: { response: { 200: ConfirmApproved, '4xx': V2ConfirmRefused, '5xx': V2ConfirmRefused } },
      },
      async (request, reply) => {
        if (shared.gate.inFlight >= config.confirmMaxInFlight) {
          metrics.shed.inc({ reason: 'in_flight' });
          return refuseV2(request, reply, 'OVERLOADED');
        }
        shared.gate.inFlight++;
        metrics.inFlight.inc();
        try {
          const payload = await verified('confirm', request, reply, (failure) => failure === 'signature'
            ? { errorMessage: REFUSAL_REASONS.FORBIDDEN, code: 'SIGNATURE_INVALID' }
            : { errorMessage: REFUSAL_REASONS.BAD_REQUEST, code: 'BAD_REQUEST' });
          if (payload === ANSWERED) return reply;
          const fields = confirmFields(payload);
          if (fields === null) return refuseV2(request, reply, 'BAD_REQUEST');
          if (foreignStore(fields.storeId)) return refuseV2(request, reply, 'FORBIDDEN');
          const decision = await decideConfirm(shared.confirmDeps, {
            impUid: v2PaymentKey(fields.transactionId),
            merchantUid: fields.paymentId,
            amount: fields.totalAmount,
            remainingMs: () => shared.budgetMs - shared.marginMs() - reply.elapsedTime,
          });
          noteDecision(request, decision, shared.confirmDeps.isKnownEvent);
          if (decision.approved) {
            request.confirmOutcome = 'APPROVED';
            return reply.status(200).send({ approved: true, hold_expires_at: new Date(decision.expiresAt).toISOString() });
          }
          return refuseV2(request, reply, decision.code);
        } finally {
          shared.gate.inFlight--;
          metrics.inFlight.dec();
        }
      },
    );

    signed.post(
      '/portone/v2/webhook',
      { bodyLimit: SIGNED_BODY_LIMIT, schema: { response: { 200: V2WebhookAccepted, '4xx': ErrorBody, '5xx': ErrorBody } } },
      async (request, reply) => {
        const payload = await verified('webhook', request, reply, (failure) => failure === 'signature'
          ? { code: 'SIGNATURE_INVALID', message: 'the request is not signed by PortOne with a current secret' }
          : { code: 'INVALID_JSON', message: 'the body is not JSON' });
        if (payload === ANSWERED) return reply;
        const fields = webhookFields(payload);
        const ignore = (status: string) => {
          metrics.webhooks.inc({ status, verdict: 'ignored' });
          return reply.status(200).send({ received: true, duplicate: false, ignored: true });
        };
        // Types dropgate does not act on, and shapes it does not know, are PortOne's to add: 200.
        if (fields === null || fields.hint === null) return ignore('other');
        const label = HINT_LABELS[fields.hint] ?? 'other';
        const eventId = fields.paymentId === null ? null : eventIdOf(fields.paymentId);
        // Another store's payment, or a payment that is none of our orders (another system on the store).
        if (fields.transactionId === null || eventId === null || foreignStore(fields.storeId)) return ignore(label);
        if (!(await catalog.exists(eventId))) return ignore(label);
        const webhookId = String(request.headers['webhook-id']);
        const idUsable = WEBHOOK_ID_PATTERN.test(webhookId);
        if (idUsable && (await store.webhookDelivered(eventId, webhookId))) {
          metrics.webhooks.inc({ status: label, verdict: 'duplicate' });
          return reply.status(200).send({ received: true, duplicate: true });
        }
        let duplicate: boolean;
        try {
          duplicate = await shared.queueOutcome(eventId, fields.paymentId!, v2PaymentKey(fields.transactionId), fields.hint);
        } catch (error) {
          // The order is unknown to Redis (not ours, or being rebuilt): PortOne retries a non-2xx.
          const http = toHttpError(error);
          if (http.statusCode === 404) return ignore(label);
          // The event being loaded again (after Redis lost it) is expected and short: PortOne retries.
          // Anything else is dropgate's error.
          if (error instanceof DomainError) request.log.warn({ code: http.code }, `V2 webhook not queued: ${http.message}`);
          else request.log.error({ err: error }, 'V2 webhook not queued');
          metrics.webhooks.inc({ status: label, verdict: 'rejected' });
          return reply.status(503).send({ code: 'NOT_READY', message: 'the webhook could not be queued; retry later' });
        }
        // Remembered only once queued: a delivery we failed must be taken again when PortOne retries it.
        if (idUsable) await store.rememberWebhookDelivery(eventId, webhookId, DELIVERY_TTL_SECONDS).catch(() => undefined);
        metrics.webhooks.inc({ status: label, verdict: duplicate ? 'duplicate' : 'queued' });
        return reply.status(200).send({ received: true, duplicate });
      },
    );
  });

  type Answer<R> = (status: number, code: string, message: string, result: 'refused' | 'rejected' | 'pending') => R;

  /**
   * Steps 1 to 3 of a manual confirmation, under the order's lease. @returns the answer (`answer`'s or
   * `paid`'s result), which the caller sends once the lease is released: a buyer retrying at once
   * after it never finds the lease still held by the request that answered.
   */
  async function manualConfirm<R>(
    log: FastifyRequest['log'], v2: PortOneV2Client, eventId: string, currency: string, merchantUid: string, paymentToken: string, totalAmount: number,
    answer: Answer<R>, paid: () => R,
  ): Promise<R> {
    // 1. The payment as PortOne has it: which attempt to hold for, and whether its amount is the order's.
    let payment;
    try {
      payment = await v2.getPayment(merchantUid);
    } catch (error) {
      log.warn({ err: error, merchantUid }, 'manual confirmation: PortOne did not tell the payment');
      return answer(503, 'PORTONE_UNAVAILABLE', '결제사와 통신할 수 없습니다. 잠시 후 다시 시도해 주세요', 'rejected');
    }
    if (payment === null) return answer(404, 'PAYMENT_NOT_FOUND', MANUAL_REFUSALS.PAYMENT_NOT_FOUND.message, 'rejected');
    if (foreignStore(payment.storeId)) return answer(403, 'FORBIDDEN', REFUSAL_REASONS.FORBIDDEN, 'rejected');
    const key = v2PaymentKey(payment.transactionId);
    if (payment.status === 'PAID' || payment.status === 'PARTIAL_CANCELLED') {
      // Paid already (this buyer's earlier request, its answer lost): the workers settle it as usual.
      await shared.queueOutcome(eventId, merchantUid, key, 'paid').catch(() => undefined);
      return answer(409, 'ALREADY_PAID', REFUSAL_REASONS.ALREADY_PAID, 'refused');
    }
    if (payment.status !== 'READY') return answer(409, 'PAYMENT_NOT_CONFIRMABLE', '승인할 수 없는 결제입니다. 다시 결제해 주세요', 'rejected');
    if (payment.total !== totalAmount) return answer(409, 'AMOUNT_MISMATCH', REFUSAL_REASONS.AMOUNT_MISMATCH, 'rejected');

    // 2. The hold, with the confirm call's script, budget and shedding.
    const started = performance.now();
    shared.gate.inFlight++;
    metrics.inFlight.inc();
    let decision;
    try {
      decision = await decideConfirm(shared.confirmDeps, {
        impUid: key, merchantUid, amount: totalAmount,
        remainingMs: () => shared.budgetMs - shared.marginMs() - (performance.now() - started),
      });
    } finally {
      shared.gate.inFlight--;
      metrics.inFlight.dec();
    }
    if (!decision.approved) return answer(REFUSAL_STATUS[decision.code], decision.code, REFUSAL_REASONS[decision.code], 'refused');

    // 3. PortOne approves or refuses, naming the attempt we hold for; no answer keeps the hold.
    let result;
    try {
      result = await v2.confirmPayment({
        paymentId: merchantUid, paymentToken, txId: payment.transactionId, totalAmount, currency,
        timeoutMs: config.portone.v2ConfirmTimeoutMs,
      });
    } catch (error) {
      log.warn({ err: error, merchantUid }, 'manual confirmation: no answer from PortOne; the hold stays until expiry asks PortOne');
      return answer(504, 'PAYMENT_PENDING', '결제 결과를 확인하고 있습니다. 주문 상태를 확인해 주세요', 'pending');
    }
    if (result.kind === 'approved') {
      // The workers ticket it: this job (or the hold's own verification) finds it paid at PortOne.
      await shared.queueOutcome(eventId, merchantUid, key, 'paid').catch((error: unknown) => {
        log.warn({ err: error, merchantUid }, 'manual confirmation: outcome not queued; verification and expiry settle it');
      });
      metrics.manualConfirms.inc({ result: 'paid' });
      return paid();
    }
    const refusal = MANUAL_REFUSALS[result.refusal];
    if (result.refusal === 'ALREADY_PAID' || result.refusal === 'ALREADY_PAID_OR_WAITING' || result.refusal === 'OTHER') {
      // Approved by an earlier request whose answer was lost, or being approved by one now, or a refusal
      // this version does not know (which may leave the payment going through): keep the hold, and
      // the workers settle it on what PortOne says of the payment (a failed one releases the hold).
      log.warn({ merchantUid, refusal: result.refusal, message: result.message }, 'manual confirmation: PortOne refused; the hold stays until PortOne says what became of the payment');
      await shared.queueOutcome(eventId, merchantUid, key, result.refusal === 'OTHER' ? 'failed' : 'paid').catch(() => undefined);
    } else {
      // Refused: nothing was paid by this request. Release the hold this request took, and forget its
      // answer so a genuine request for the same attempt is decided afresh (see releaseAttempt-6.lua).
      // A hold it only replayed was taken by another request (PortOne's signed confirm for the same
      // attempt, or an earlier confirmation whose answer was lost) that PortOne may be approving: it
      // stays, and the workers end it from what PortOne says (attack round 26A).
      if (!decision.replayed) {
        await store.releaseAttempt(eventId, merchantUid, key).catch((error: unknown) => {
          log.warn({ err: error, merchantUid }, 'manual confirmation: hold not released; it expires');
        });
      }
      // The workers still ask PortOne about the attempt: some PGs report a failure and pay later, and
      // a payment found failed is watched for that (the hold is gone, so no expiry would ask).
      await shared.queueOutcome(eventId, merchantUid, key, 'failed').catch(() => undefined);
    }
    const message = result.refusal === 'PG_PROVIDER' && result.message ? `${refusal.message} (${result.message.slice(0, 200)})` : refusal.message;
    return answer(refusal.status, refusal.code, message, 'refused');
  }

  app.post(
    '/portone/v2/manual-confirm',
    { bodyLimit: 4 * 1024, schema: { body: ManualConfirmBody, response: { 200: ManualConfirmPaid, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      const { payment_id: merchantUid, payment_token: paymentToken, total_amount: totalAmount } = request.body;
      const answer = (status: number, code: string, message: string, result: 'refused' | 'rejected' | 'pending') => {
        metrics.manualConfirms.inc({ result });
        return reply.status(status).send({ code, message });
      };
      const v2 = deps.portoneV2;
      if (v2 === null) return answer(503, 'NOT_CONFIGURED', 'manual confirmation needs PORTONE_V2_API_SECRET', 'rejected');
      // Only the order's buyer (its order token) or the merchant (the admin token) may confirm its
      // payment: merchant_uids are not secrets, and a stranger's attempts would otherwise count
      // against the order's (RATE_LIMITED) and take its hold numbers (TOO_MANY_ATTEMPTS), locking
      // the buyer out. Checked before anything is counted, held or asked of PortOne.
      const token = bearerToken(request.headers.authorization);
      if (!token) return answer(401, 'UNAUTHORIZED', 'manual confirmation needs the order token: Authorization: Bearer <order_token>', 'rejected');
      const eventId = eventIdOf(merchantUid);
      const event = eventId === null ? undefined : await catalog.get(eventId);
      if (eventId === null || !event) return answer(404, 'ORDER_NOT_FOUND', REFUSAL_REASONS.ORDER_NOT_FOUND, 'rejected');
      const admin = isAdminToken(token, config.adminToken);
      let owned;
      try {
        owned = admin || orderTokenMatches(token, (await ordersRepo.findOrder(deps.db, merchantUid))?.order_token_hash ?? null);
      } catch {
        return answer(503, 'NOT_READY', REFUSAL_REASONS.NOT_READY, 'rejected');
      }
      // A wrong token gets the same answer as an order that does not exist (as GET /orders/:merchant_uid).
      if (!owned) return answer(404, 'ORDER_NOT_FOUND', REFUSAL_REASONS.ORDER_NOT_FOUND, 'rejected');
      // The order must exist before PortOne is called for it: a made-up payment_id costs one Redis read.
      let state;
      try {
        state = await store.orderState(eventId, merchantUid);
        if (state === null && (await store.eventState(eventId)) !== 'ready') return answer(503, 'NOT_READY', REFUSAL_REASONS.NOT_READY, 'rejected');
      } catch {
        return answer(503, 'NOT_READY', REFUSAL_REASONS.NOT_READY, 'rejected');
      }
      if (state === null) return answer(404, 'ORDER_NOT_FOUND', REFUSAL_REASONS.ORDER_NOT_FOUND, 'rejected');
      if (state.status === 'paid') return answer(409, 'ALREADY_PAID', REFUSAL_REASONS.ALREADY_PAID, 'rejected');
      if (state.status === 'refunded') return answer(409, 'ORDER_CLOSED', REFUSAL_REASONS.ORDER_CLOSED, 'rejected');
      if (shared.gate.inFlight >= config.confirmMaxInFlight) {
        metrics.shed.inc({ reason: 'in_flight' });
        return answer(503, 'OVERLOADED', REFUSAL_REASONS.OVERLOADED, 'rejected');
      }
      let attempts;
      try {
        attempts = await store.countManualConfirm(eventId, merchantUid, MANUAL_CONFIRM_WINDOW_MS);
      } catch {
        return answer(503, 'NOT_READY', REFUSAL_REASONS.NOT_READY, 'rejected');
      }
      if (attempts.count > MANUAL_CONFIRMS_PER_ORDER) {
        void reply.header('retry-after', String(Math.max(1, Math.ceil(attempts.resetMs / 1000))));
        return answer(429, 'RATE_LIMITED', '결제 승인 요청이 너무 많습니다. 잠시 후 다시 시도해 주세요', 'rejected');
      }
      // One confirmation of an order at a time: a refused one then never releases a hold that a
      // concurrent approved one (same attempt, replayed approval) relies on.
      const leaseMs = 2 * config.portone.v2ConfirmTimeoutMs + 5_000;
      let lease: string | null;
      try {
        lease = await store.lockManualConfirm(eventId, merchantUid, leaseMs);
      } catch {
        return answer(503, 'NOT_READY', REFUSAL_REASONS.NOT_READY, 'rejected');
      }
      if (lease === null) return answer(409, 'CONFIRM_IN_PROGRESS', '결제 승인을 처리하고 있습니다. 잠시 후 주문 상태를 확인해 주세요', 'rejected');
      let send: () => FastifyReply;
      try {
        send = await manualConfirm(
          request.log, v2, eventId, event.currency, merchantUid, paymentToken, totalAmount,
          (status, code, message, result) => () => answer(status, code, message, result), () => () => reply.status(200).send({ status: 'paid' }),
        );
      } finally {
        await store.unlockManualConfirm(eventId, merchantUid, lease).catch(() => undefined);
      }
      return send();
    },
  );
};
