/**
 * PortOne-facing endpoints: the V1 confirm call and V1 webhooks (the V2 ones, in portone-v2.routes.ts,
 * share this plugin's shedding, confirm dependencies and outcome queueing). Both bodies come from the internet
 * unsigned: a confirm's answer is remembered only for the same request, every approved payment is
 * verified with PortOne by the workers, a webhook only makes the workers ask PortOne, and what one
 * caller can make dropgate store or call is bounded per order and payment (see placeHold and
 * noteWebhook: webhooks' PortOne lookups are paced per payment, put off but never dropped).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import { DomainError, REFUSAL_REASONS, eventIdOf, sameSecret, type ConfirmOutcome } from '@dropgate/domain';
import { jobIds, type PaymentOutcomeJob } from '@dropgate/jobs';
import { WEBHOOK_ACTED, type WebhookGeneration } from '@dropgate/redis';
import { ConfirmApproved, ConfirmBody, ConfirmRefused, ErrorBody, WebhookAccepted, WebhookBody } from '../schemas.ts';
import { decideConfirm, noteDecision } from '../lib/confirm.service.ts';
import { toHttpError } from '../plugins/errors.plugin.ts';
import { HttpError, REFUSAL_STATUS } from '../lib/http-errors.ts';
import type { AppDeps } from '../deps.ts';
import { portoneV2Routes } from './portone-v2.routes.ts';

declare module 'fastify' {
  interface FastifyRequest {
    confirmOutcome: ConfirmOutcome | null;
    confirmEvent: string;
    /** ms from the request's start until its body was in (-1: not yet). */
    confirmBodyMs: number;
    /** The body came in with the budget spent: refused DEADLINE before Redis was asked. */
    confirmLate: boolean;
    /** Decided in Redis for an order of a known event: its time feeds the dynamic waiting room's pace. */
    confirmDecided: boolean;
  }
}

/** Milliseconds kept in reserve so an answer decided in budget also leaves in budget. */
export function safetyMarginMs(budgetMs: number): number {
  return Math.min(100, Math.max(25, Math.round(budgetMs * 0.02)));
}

/**
 * The reserve for a confirm decided now: the fixed margin plus how long the event loop was held in
 * about the last second (a timer due at the deadline fires that late on a loop that lags: garbage
 * collection, a burst of work, a machine short of CPU), at most a quarter of the budget.
 */
export function reserveMs(budgetMs: number, recentLagMs: number): number {
  return safetyMarginMs(budgetMs) + lagReserveMs(budgetMs, recentLagMs);
}

/** The part of the reserve the loop's recent lag adds (dropgate_confirm_lag_reserve_seconds). */
export function lagReserveMs(budgetMs: number, recentLagMs: number): number {
  return Math.min(Math.round(budgetMs / 4), Math.max(0, Math.ceil(recentLagMs)));
}

function ipAllowed(ip: string, allowed: readonly string[]): boolean {
  const bare = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return allowed.includes(bare) || allowed.includes(ip);
}

/** Webhook statuses PortOne V1 sends (the schema refuses others); `other` keeps metric labels a closed set. */
const WEBHOOK_STATUS_LABELS: ReadonlySet<string> = new Set(['ready', 'paid', 'failed', 'cancelled']);

/** Job states in which a queued outcome has not started yet: a new webhook for it is a duplicate. */
const NOT_STARTED: ReadonlySet<string> = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children']);

export interface PortOneRoutesOptions {
  deps: AppDeps;
  /** The event loop's recent lag (ms; see EventLoopGate.recentLagMs); none when not given. */
  loopLagMs?: () => number;
}

export const portoneRoutes: FastifyPluginAsyncTypebox<PortOneRoutesOptions> = async (app, { deps, loopLagMs }) => {
  const { config, metrics, store, queues, catalog } = deps;
  const budgetMs = config.confirmBudgetMs;
  const lag = loopLagMs ?? (() => 0);
  const marginMs = () => reserveMs(budgetMs, lag());
  // One count of confirms in flight for V1 and V2 alike: both compete for the same Redis and deadline.
  const gate = { inFlight: 0 };
  const lastRebuildRequest = new Map<string, number>();

  await app.register(formbody, { bodyLimit: 16 * 1024 });

  app.decorateRequest('confirmOutcome', null);
  app.decorateRequest('confirmEvent', '');
  app.decorateRequest('confirmBodyMs', -1);
  app.decorateRequest('confirmLate', false);
  app.decorateRequest('confirmDecided', false);
  // When the body was in: the time before it is the caller's or the network's, not dropgate's.
  app.addHook('preValidation', async (request, reply) => {
    if (request.confirmBodyMs < 0) request.confirmBodyMs = reply.elapsedTime;
  });

  const refuse = (request: FastifyRequest, reply: FastifyReply, code: Exclude<ConfirmOutcome, 'APPROVED'>, message?: string) => {
    request.confirmOutcome = code;
    return reply.status(REFUSAL_STATUS[code]).send({ code, reason: REFUSAL_REASONS[code], message: message ?? REFUSAL_REASONS[code] });
  };

  app.addHook('onResponse', async (request, reply) => {
    const outcome = request.confirmOutcome;
    if (outcome === null) return;
    const seconds = reply.elapsedTime / 1000;
    metrics.confirmDuration.observe({ code: outcome }, seconds);
    metrics.confirms.inc({ event: request.confirmEvent || 'unknown', code: outcome });
    // A body that came in with the budget (nearly) spent is answered late whatever dropgate does: it is
    // counted apart, not as dropgate's deadline miss, whose alert pages (attack round 23A: bodies sent
    // slowly on purpose, by anyone, paged the operator with one request each).
    // A request refused before its body was parsed (not JSON, too large, the allowlist): now.
    const bodyMs = request.confirmBodyMs >= 0 ? request.confirmBodyMs : reply.elapsedTime;
    if (request.confirmLate || bodyMs >= budgetMs - safetyMarginMs(budgetMs)) metrics.lateBodies.inc();
    else if (reply.elapsedTime > budgetMs) metrics.deadlineMisses.inc();
    // The room's pace follows dropgate's own time to decide real orders: a made-up merchant_uid of the
    // event, or a slow upload, must not slow everyone's admissions (attack round 23A).
    if (request.confirmDecided) noteLatency(request.confirmEvent, reply.elapsedTime - bodyMs);
  });

  // The dynamic waiting room's pace follows the confirm latency: each process keeps a moving average
  // per event and writes it to the event's room at most every 500 ms (one HSET, off the answer's path).
  const latency = new Map<string, { ewma: number; flushedAt: number }>();
  const noteLatency = (eventId: string, ms: number) => {
    const def = catalog.peek(eventId);
    if (def?.waitingRoom?.mode !== 'dynamic') return;
    const l = latency.get(eventId) ?? { ewma: ms, flushedAt: 0 };
    l.ewma = l.ewma * 0.8 + ms * 0.2;
    latency.set(eventId, l);
    const now = deps.clock.now();
    if (now - l.flushedAt < 500) return;
    l.flushedAt = now;
    store.queues.noteConfirmLatency(eventId, l.ewma).catch(() => undefined);
  };

  const confirmErrorHandler = (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const http = toHttpError(error);
    request.confirmOutcome = 'BAD_REQUEST';
    if (http.statusCode >= 500) {
      request.log.error({ err: error }, 'confirm failed');
      request.confirmOutcome = 'NOT_READY';
      return reply.status(503).send({ code: 'NOT_READY', reason: REFUSAL_REASONS.NOT_READY, message: 'internal error' });
    }
    return reply.status(http.statusCode).send({ code: http.code, reason: REFUSAL_REASONS.BAD_REQUEST, message: http.message });
  };

  // Built once: the confirm path allocates as little as it can per request.
  const confirmDeps = {
    store,
    isKnownEvent: (id: string) => catalog.isKnown(id),
    now: () => deps.clock.now(),
    onEventNotLoaded: (eventId: string) => {
      const now = Date.now();
      if ((lastRebuildRequest.get(eventId) ?? 0) > now - 1_000) return;
      lastRebuildRequest.set(eventId, now);
      queues.maintenance
        .add('rebuild', { kind: 'rebuild', eventId }, { jobId: jobIds.rebuild(eventId, String(Math.floor(now / 1000))) })
        .catch(() => undefined);
    },
  };

  /**
   * A confirm refused PAYMENT_UNCHECKED has the worker verify the payments of the order's last hold now
   * (checkUnchecked), so the buyer's next try is decided on PortOne's word, not when a verification
   * backed off through an outage next asks (attack round 28C). One job per order at a time (its id
   * is free again once it ran, and it runs once): while PortOne stays down, made-up confirms cost it at
   * most one lookup per order at a time. Not awaited: the answer does not wait for the queue.
   */
  const askUnchecked = (eventId: string, merchantUid: string): void => {
    const job: PaymentOutcomeJob = { eventId, merchantUid, impUid: '', hint: null, source: 'unchecked', receivedAt: Date.now() };
    queues.payments
      .add('unchecked', job, { jobId: jobIds.checkUnchecked(merchantUid), attempts: 1, removeOnComplete: true, removeOnFail: true })
      .catch(() => undefined);
  };

  app.post(
    '/portone/v1/confirm',
    {
      bodyLimit: 4 * 1024,
      errorHandler: confirmErrorHandler,
      // A source outside CONFIRM_ALLOWED_IPS is refused on its headers, before its body is read.
      onRequest: async (request, reply) => {
        if (config.confirmAllowedIps && !ipAllowed(request.ip, config.confirmAllowedIps)) {
          return refuse(request, reply, 'FORBIDDEN', 'source address not allowed');
        }
        return undefined;
      },
      // A form-encoded body carries every value as a string: read a digit-only amount as the number it
      // is (the JSON schema does not coerce), and an empty one as absent.
      preValidation: async (request) => {
        const body = request.body as Record<string, unknown> | null;
        const form = String(request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
        if (form && body && typeof body === 'object' && typeof body['amount'] === 'string') {
          const raw = body['amount'].trim();
          if (raw === '') delete body['amount'];
          else if (/^\d{1,11}$/.test(raw)) body['amount'] = Number(raw);
        }
      },
      schema: { body: ConfirmBody, response: { 200: ConfirmApproved, '4xx': ConfirmRefused, '5xx': ConfirmRefused } },
    },
    async (request, reply) => {
      // A V2-only store (no PORTONE_IMP_KEY) cannot verify a V1 payment: an unsigned V1 confirm would
      // hold its places until the hold's expiry gave up asking PortOne (TTL + EXPIRY_GRACE_SECONDS),
      // not seconds (attack round 26A). Refused like a V1 confirm naming a V2 order: nothing is held.
      if (config.portone.v2Only) return refuse(request, reply, 'ORDER_NOT_FOUND');
      if (gate.inFlight >= config.confirmMaxInFlight) {
        metrics.shed.inc({ reason: 'in_flight' });
        return refuse(request, reply, 'OVERLOADED');
      }
      gate.inFlight++;
      metrics.inFlight.inc();
      try {
        const { imp_uid, merchant_uid, amount } = request.body;
        const decision = await decideConfirm(
          confirmDeps,
          { impUid: imp_uid, merchantUid: merchant_uid, amount: amount ?? null, remainingMs: () => budgetMs - marginMs() - reply.elapsedTime },
        );
        noteDecision(request, decision, confirmDeps.isKnownEvent);
        if (decision.approved) {
          request.confirmOutcome = 'APPROVED';
          return reply.status(200).send({ approved: true, hold_expires_at: new Date(decision.expiresAt).toISOString() });
        }
        if (decision.code === 'PAYMENT_UNCHECKED' && decision.eventId !== null) askUnchecked(decision.eventId, merchant_uid);
        return refuse(request, reply, decision.code);
      } finally {
        gate.inFlight--;
        metrics.inFlight.dec();
      }
    },
  );

  /**
   * Queues an outcome job for a webhook naming payment `impUid` of order `merchantUid`, unless one for
   * it is queued and not started yet (that job will ask PortOne anyway), or the worker already acted
   * on PortOne saying exactly the status this webhook claims, or that the payment is another order's
   * (it stays so): then it is a duplicate. Otherwise a job that started, finished or failed never
   * swallows a later webhook: it gets a new generation, paced per payment by noteWebhook. Past the
   * pace that generation's job waits (a delayed job) until the pace allows, and every webhook until
   * then shares it: each webhook is still followed by a PortOne lookup that starts after it arrived,
   * and a flood of webhooks costs a few lookups per window, whatever they claim.
   * @returns true for a duplicate.
   */
  async function queueOutcome(eventId: string, merchantUid: string, impUid: string, hint: string): Promise<boolean> {
    const now = deps.clock.now();
    const peek = await store.webhookGeneration(eventId, merchantUid, impUid, 'peek', now);
    if (peek === 'order_missing') throw new DomainError('ORDER_NOT_FOUND', `order ${merchantUid} does not exist`);
    if (peek === 'not_ready') throw new DomainError('NOT_READY', 'the event is being loaded; retry later');
    const idOf = (g: WebhookGeneration) =>
      g.perOrder ? jobIds.orderOutcome(merchantUid, g.generation) : jobIds.paymentOutcome(merchantUid, impUid, g.generation);
    /**
     * Adds the outcome job under `jobId`, to start `delayMs` from now. @returns 'added', 'duplicate'
     * (that id holds a job not started yet) or 'taken' (that id holds a job that started or ended).
     */
    const addOutcome = async (perOrder: boolean, jobId: string, delayMs: number): Promise<'added' | 'duplicate' | 'taken'> => {
      const job: PaymentOutcomeJob = perOrder
        ? { eventId, merchantUid, impUid: '', hint, source: 'reconcile', receivedAt: Date.now() }
        : { eventId, merchantUid, impUid, hint, source: 'webhook', receivedAt: Date.now() };
      const added = await queues.payments.add(perOrder ? 'reconcile' : 'outcome', job, { jobId, ...(delayMs > 0 ? { delay: delayMs } : {}) });
      // add() answers with a job built from our data even when the id existed (a no-op): read back.
      const stored = await queues.payments.getJob(added.id ?? jobId);
      if (stored && (stored.data as PaymentOutcomeJob).receivedAt === job.receivedAt && stored.timestamp === added.timestamp) return 'added';
      return stored && NOT_STARTED.has(await stored.getState()) ? 'duplicate' : 'taken';
    };
    /** Counts a webhook answered by a lookup the pace put off. */
    const notePutOff = (g: WebhookGeneration) => {
      if (g.startsAt > now) metrics.webhooksDeferred.inc({ reason: g.actedOn === WEBHOOK_ACTED.unknown ? 'unknown_payment' : 'rate' });
    };
    // The worker already acted on exactly what this webhook claims, or found the payment is another
    // order's: nothing new to ask PortOne about.
    if (peek.actedOn !== null && (peek.actedOn === hint || peek.actedOn === WEBHOOK_ACTED.foreign)) return true;
    if (peek.generation > 0) {
      const current = await queues.payments.getJob(idOf(peek));
      if (current && NOT_STARTED.has(await current.getState())) {
        notePutOff(peek);
        return true;
      }
      // A running job may have asked PortOne before this news: the next generation queues behind it
      // (the order's settlement lock), within the pace.
    }
    // A few tries: an id can exist already when the numbering was lost (Redis restarted empty).
    let taken: number | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      const next = await store.webhookGeneration(eventId, merchantUid, impUid, 'next', now, taken);
      if (typeof next === 'string') throw new DomainError(next === 'order_missing' ? 'ORDER_NOT_FOUND' : 'NOT_READY', 'the order is not available; retry later');
      const outcome = await addOutcome(next.perOrder, idOf(next), next.startsAt - now);
      if (outcome !== 'taken') {
        notePutOff(next);
        return outcome === 'duplicate';
      }
      taken = next.generation;
    }
    throw new Error(`no free outcome job id for ${merchantUid}/${impUid}`);
  }

  app.post(
    '/portone/v1/webhook',
    { bodyLimit: 16 * 1024, schema: { body: WebhookBody, response: { 200: WebhookAccepted, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      const { imp_uid, merchant_uid, status } = request.body;
      const statusLabel = WEBHOOK_STATUS_LABELS.has(status) ? status : 'other';
      const reject = (code: 'WEBHOOK_FORBIDDEN' | 'ORDER_NOT_FOUND', message: string): never => {
        metrics.webhooks.inc({ status: statusLabel, verdict: 'rejected' });
        throw code === 'WEBHOOK_FORBIDDEN' ? new HttpError(code, message) : new DomainError(code, message);
      };
      // One answer for either check, so a caller cannot tell which one it passed.
      const forbidden = 'this webhook is not accepted from this caller';
      const given = (request.query as Record<string, unknown>)?.['token'];
      if (config.webhookToken && !(typeof given === 'string' && sameSecret(given, config.webhookToken))) {
        reject('WEBHOOK_FORBIDDEN', forbidden);
      }
      if (config.webhookAllowedIps && !ipAllowed(request.ip, config.webhookAllowedIps)) reject('WEBHOOK_FORBIDDEN', forbidden);
      // A V2-only store takes no V1 payments: a V1 webhook is nobody's news, and its PortOne lookup
      // (with no V1 credentials) could only fail, leaving a failed job for a week (attack round 26A).
      if (config.portone.v2Only) reject('ORDER_NOT_FOUND', `order ${merchant_uid} takes no PortOne V1 payments`);
      const eventId = eventIdOf(merchant_uid);
      if (eventId === null || !(await catalog.exists(eventId))) {
        reject('ORDER_NOT_FOUND', `order ${merchant_uid} is not one of ours`);
      }
      let duplicate: boolean;
      try {
        duplicate = await queueOutcome(eventId!, merchant_uid, imp_uid, status);
      } catch (error) {
        if (error instanceof DomainError) throw error;
        request.log.error({ err: error }, 'webhook not queued');
        throw new DomainError('NOT_READY', 'the webhook could not be queued; retry later');
      }
      metrics.webhooks.inc({ status: statusLabel, verdict: duplicate ? 'duplicate' : 'queued' });
      return reply.status(200).send({ received: true, duplicate });
    },
  );

  await app.register(portoneV2Routes, { deps, shared: { gate, confirmDeps, queueOutcome, budgetMs, marginMs } });
};
