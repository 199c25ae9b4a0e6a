/** PortOne-facing endpoints: the V1 confirm call and V1 webhooks. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import { DomainError, REFUSAL_REASONS, REFUSAL_STATUS, eventIdOf, type ConfirmOutcome } from '@dropgate/domain';
import { jobIds, type PaymentOutcomeJob } from '@dropgate/jobs';
import { ConfirmApproved, ConfirmBody, ConfirmRefused, ErrorBody, WebhookAccepted, WebhookBody } from '../schemas.ts';
import { decideConfirm } from '../lib/confirm.service.ts';
import { toHttpError } from '../plugins/errors.plugin.ts';
import type { AppDeps } from '../app.ts';

declare module 'fastify' {
  interface FastifyRequest {
    confirmOutcome: ConfirmOutcome | null;
    confirmEvent: string;
  }
}

/** Milliseconds kept in reserve so an answer decided in budget also leaves in budget. */
export function safetyMarginMs(budgetMs: number): number {
  return Math.min(100, Math.max(25, Math.round(budgetMs * 0.02)));
}

function ipAllowed(ip: string, allowed: readonly string[]): boolean {
  const bare = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return allowed.includes(bare) || allowed.includes(ip);
}

export const portoneRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const { config, metrics, store, queues, catalog } = deps;
  const budgetMs = config.confirmBudgetMs;
  const margin = safetyMarginMs(budgetMs);
  let inFlight = 0;
  const lastRebuildRequest = new Map<string, number>();

  await app.register(formbody, { bodyLimit: 16 * 1024 });

  app.decorateRequest('confirmOutcome', null);
  app.decorateRequest('confirmEvent', '');

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
    if (reply.elapsedTime > budgetMs) metrics.deadlineMisses.inc();
  });

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
    onEventNotLoaded: (eventId: string) => {
      const now = Date.now();
      if ((lastRebuildRequest.get(eventId) ?? 0) > now - 1_000) return;
      lastRebuildRequest.set(eventId, now);
      queues.maintenance
        .add('rebuild', { kind: 'rebuild', eventId }, { jobId: jobIds.rebuild(eventId, String(Math.floor(now / 1000))) })
        .catch(() => undefined);
    },
  };

  app.post(
    '/portone/v1/confirm',
    {
      bodyLimit: 4 * 1024,
      errorHandler: confirmErrorHandler,
      schema: { body: ConfirmBody, response: { 200: ConfirmApproved, '4xx': ConfirmRefused, '5xx': ConfirmRefused } },
    },
    async (request, reply) => {
      if (inFlight >= config.confirmMaxInFlight) {
        metrics.shed.inc({ reason: 'in_flight' });
        return refuse(request, reply, 'OVERLOADED');
      }
      inFlight++;
      metrics.inFlight.inc();
      try {
        const { imp_uid, merchant_uid, amount } = request.body;
        const decision = await decideConfirm(
          confirmDeps,
          { impUid: imp_uid, merchantUid: merchant_uid, amount: amount ?? null, remainingMs: () => budgetMs - margin - reply.elapsedTime },
        );
        request.confirmEvent = decision.eventId && catalog.isKnown(decision.eventId) ? decision.eventId : 'unknown';
        if (decision.approved) {
          request.confirmOutcome = 'APPROVED';
          return reply.status(200).send({ approved: true, hold_expires_at: new Date(decision.expiresAt).toISOString() });
        }
        return refuse(request, reply, decision.code);
      } finally {
        inFlight--;
        metrics.inFlight.dec();
      }
    },
  );

  app.post(
    '/portone/v1/webhook',
    { bodyLimit: 16 * 1024, schema: { body: WebhookBody, response: { 200: WebhookAccepted, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      const { imp_uid, merchant_uid, status } = request.body;
      const reject = (code: 'WEBHOOK_FORBIDDEN' | 'ORDER_NOT_FOUND', message: string) => {
        metrics.webhooks.inc({ status: status.slice(0, 16), verdict: 'rejected' });
        throw new DomainError(code, message);
      };
      if (config.webhookToken && (request.query as Record<string, unknown>)?.['token'] !== config.webhookToken) {
        reject('WEBHOOK_FORBIDDEN', 'webhook token missing or wrong');
      }
      if (config.webhookAllowedIps && !ipAllowed(request.ip, config.webhookAllowedIps)) {
        reject('WEBHOOK_FORBIDDEN', `source address ${request.ip} is not allowed`);
      }
      const eventId = eventIdOf(merchant_uid);
      if (eventId === null || !(catalog.isKnown(eventId) || (await catalog.get(eventId)))) {
        reject('ORDER_NOT_FOUND', `order ${merchant_uid} is not one of ours`);
      }
      const job: PaymentOutcomeJob = { eventId: eventId!, merchantUid: merchant_uid, impUid: imp_uid, hint: status, source: 'webhook', receivedAt: Date.now() };
      const jobId = jobIds.paymentOutcome(imp_uid, status);
      let duplicate: boolean;
      try {
        await queues.payments.add('outcome', job, { jobId });
        // add() answers with a job built from our data even when the id existed (the add was a
        // no-op), so read back what is stored to tell a duplicate.
        const stored = await queues.payments.getJob(jobId);
        duplicate = stored !== undefined && (stored.data as PaymentOutcomeJob).receivedAt !== job.receivedAt;
      } catch (error) {
        request.log.error({ err: error }, 'webhook not queued');
        throw new DomainError('NOT_READY', 'the webhook could not be queued; retry later');
      }
      metrics.webhooks.inc({ status: status.slice(0, 16), verdict: duplicate ? 'duplicate' : 'queued' });
      return reply.status(200).send({ received: true, duplicate });
    },
  );
};
