/** Admin API (`/admin/*`): bearer-token protected. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { HttpError } from '../lib/http-errors.ts';
import { CreateEventBody, ErrorBody, EventBody } from '../schemas.ts';
import { createEvent } from '../lib/events.service.ts';
import { bearerToken } from '@dropgate/domain';
import { isAdminToken } from '../lib/secrets.ts';
import { eventBody } from './storefront.routes.ts';
import type { AppDeps } from '../deps.ts';

export const adminRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.addHook('onRequest', async (request) => {
    const token = deps.config.adminToken;
    const given = bearerToken(request.headers.authorization);
    if (!token || !given || !isAdminToken(given, token)) {
      throw new HttpError('UNAUTHORIZED', token ? 'a valid admin bearer token is required' : 'the admin API is disabled: set ADMIN_TOKEN');
    }
  });

  app.post(
    '/admin/events',
    {
      bodyLimit: 32 * 1024 * 1024,
      schema: { body: CreateEventBody, response: { 201: EventBody, '4xx': ErrorBody, '5xx': ErrorBody } },
    },
    async (request, reply) => {
      await createEvent(deps.db, deps.store, deps.catalog, request.body);
      const def = await deps.catalog.get(request.body.id);
      if (!def) throw new Error('event vanished after creation');
      const availability = await deps.store.availability(def.id, def.pools);
      return reply.status(201).send(eventBody(def, availability, deps.clock.now()));
    },
  );
};
