/**
 * The waiting room (issue 11): join the queue, poll one's place and, once admitted, get the admission
 * token; and the waiting list: join it, poll one's entry and, once offered, get the order.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DomainError } from '@dropgate/domain';
import {
  ErrorBody, EventIdParams, JoinQueueBody, JoinWaitlistBody, JoinedQueueBody, JoinedWaitlistBody, QueueBody, QueueTokenParams, WaitlistBody, WaitlistTokenParams,
} from '../schemas.ts';
import { joinQueue, pollQueue } from '../lib/queue.service.ts';
import { joinWaitlist, pollWaitlist, WaitlistStepPacer } from '../lib/waitlist.service.ts';
import { preRegisterOrder } from '../lib/pre-register.ts';
import { perAddressLimit, requireBuyer } from '../lib/buyers.ts';
import type { EventDef } from '../lib/catalog.ts';
import type { AppDeps } from '../deps.ts';

export const queueRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const steps = new WaitlistStepPacer();
  const requireEvent = async (eventId: string): Promise<EventDef> => {
    const def = await deps.catalog.get(eventId);
    if (!def) throw new DomainError('EVENT_NOT_FOUND', `event ${eventId} does not exist`);
    return def;
  };

  app.post(
    '/events/:event_id/queue',
    { bodyLimit: 1024, config: perAddressLimit(deps, 'queue'), schema: { params: EventIdParams, body: JoinQueueBody, response: { 201: JoinedQueueBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      requireBuyer(deps, 'queue', request.body.buyer_id, request.body.buyer_token);
      const def = await requireEvent(request.params.event_id);
      const joined = await joinQueue(deps.store, def, request.body.buyer_id, deps.clock.now());
      deps.metrics.queueJoins.inc({ event: def.id });
      return reply.status(201).header('cache-control', 'no-store').send(joined);
    },
  );

  app.get(
    '/events/:event_id/queue/:queue_token',
    { schema: { params: QueueTokenParams, response: { 200: QueueBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      const def = await requireEvent(request.params.event_id);
      try {
        const answer = await pollQueue(deps.store, def, request.params.queue_token, deps.clock.now(), deps.config.confirmBudgetMs);
        deps.metrics.queuePolls.inc({ event: def.id, state: answer.state });
        return await reply.header('cache-control', 'no-store').send(answer);
      } catch (error) {
        if (error instanceof DomainError && error.code === 'RATE_LIMITED') {
          deps.metrics.queuePolls.inc({ event: def.id, state: 'rate_limited' });
          void reply.header('retry-after', '1');
        }
        throw error;
      }
    },
  );

  app.post(
    '/events/:event_id/waitlist',
    { bodyLimit: 16 * 1024, config: perAddressLimit(deps, 'waitlist'), schema: { params: EventIdParams, body: JoinWaitlistBody, response: { 201: JoinedWaitlistBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      requireBuyer(deps, 'waitlist', request.body.buyer_id, request.body.buyer_token);
      const def = await requireEvent(request.params.event_id);
      const joined = await joinWaitlist(deps.db, deps.store, def, request.body, deps.config.waitlistMaxEntries, deps.clock.now());
      deps.metrics.waitlistJoins.inc({ event: def.id });
      return reply.status(201).header('cache-control', 'no-store').send(joined);
    },
  );

  app.get(
    '/events/:event_id/waitlist/:waitlist_token',
    { schema: { params: WaitlistTokenParams, response: { 200: WaitlistBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
      const def = await requireEvent(request.params.event_id);
      const answer = await pollWaitlist(deps.db, deps.store, def, request.params.waitlist_token, deps.clock.now(), {
        defaultApi: deps.config.portone.defaultApi,
        onOffer: (created, api) => preRegisterOrder(deps, api, created, request.log),
        mayStep: () => {
          const run = steps.take(def.id);
          deps.metrics.waitlistSteps.inc({ event: def.id, result: run ? 'run' : 'paced' });
          return run;
        },
      });
      deps.metrics.waitlistPolls.inc({ event: def.id, state: answer.state });
      // The body may carry an order token: no cache may keep it.
      return reply.header('cache-control', 'no-store').send(answer);
    },
  );
};
