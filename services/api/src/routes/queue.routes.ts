/** The waiting room (issue 11): join the queue, poll one's place and, once admitted, get the admission token. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DomainError } from '@dropgate/domain';
import { ErrorBody, EventIdParams, JoinQueueBody, JoinedQueueBody, QueueBody, QueueTokenParams } from '../schemas.ts';
import { joinQueue, pollQueue } from '../lib/queue.service.ts';
import type { EventDef } from '../lib/catalog.ts';
import type { AppDeps } from '../deps.ts';

export const queueRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const requireEvent = async (eventId: string): Promise<EventDef> => {
    const def = await deps.catalog.get(eventId);
    if (!def) throw new DomainError('EVENT_NOT_FOUND', `event ${eventId} does not exist`);
    return def;
  };

  app.post(
    '/events/:event_id/queue',
    { bodyLimit: 1024, schema: { params: EventIdParams, body: JoinQueueBody, response: { 201: JoinedQueueBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
    async (request, reply) => {
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
};
