/**
 * The baseline: bare fastify endpoints with the confirm and order routes' request and response schemas
 * and the API's fastify options, doing no I/O. Prints its URL on stdout once listening.
 *
 * And the floor of a confirm (`/floor/v1/confirm`): the same schemas and one EVALSHA of the smallest
 * script that could be called a hold (HSETNX of the order in one hash), through a client set up as
 * the API's (ioredis, auto-pipelining), answered 200 or 409 as the confirm is: what any confirm that
 * decides in Redis costs at least, so a scenario's distance from it is dropgate's own. Its one key
 * is deleted on SIGTERM.
 */
import Fastify from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '@dropgate/config';
import { createRedis } from '@dropgate/redis';
import { ConfirmApproved, ConfirmBody, ConfirmRefused, CreateOrderBody, CreatedOrderBody, ErrorBody, EventIdParams } from '@dropgate/api/schemas';

const app = Fastify({ logger: false, bodyLimit: 16 * 1024, ajv: { customOptions: { removeAdditional: false, coerceTypes: false } } }).withTypeProvider<TypeBoxTypeProvider>();
const expires = new Date(Date.now() + 300_000).toISOString();
app.post(
  '/portone/v1/confirm',
  { bodyLimit: 4 * 1024, schema: { body: ConfirmBody, response: { 200: ConfirmApproved, '4xx': ConfirmRefused, '5xx': ConfirmRefused } } },
  async () => ({ approved: true as const, hold_expires_at: expires }),
);
app.post(
  '/events/:event_id/orders',
  { bodyLimit: 64 * 1024, schema: { params: EventIdParams, body: CreateOrderBody, response: { 201: CreatedOrderBody, '4xx': ErrorBody, '5xx': ErrorBody } } },
  async (request, reply) => reply.status(201).header('cache-control', 'no-store').send({
    merchant_uid: `${request.params.event_id}.${randomBytes(8).toString('base64url').slice(0, 11)}`,
    event_id: request.params.event_id, amount: 1000, currency: 'KRW', status: 'pending' as const,
    order_token: randomBytes(24).toString('base64url'),
  }),
);
// Defined as the API's scripts are (defineCommand: EVALSHA, EVAL when the server lacks it; on a
// cluster too), so the floor pays what the API's client pays for a script call.
const redis = createRedis(loadConfig(), { autoPipelining: true, name: 'dropgate-bench-floor' });
redis.defineCommand('floorHold', { numberOfKeys: 1, lua: 'return redis.call(\'HSETNX\', KEYS[1], ARGV[1], ARGV[2])' });
const floorHold = (redis as unknown as { floorHold: (key: string, uid: string, imp: string) => Promise<number> }).floorHold.bind(redis);
const floorKey = `{bench-floor-${randomBytes(6).toString('hex')}}:holds`;
app.post(
  '/floor/v1/confirm',
  { bodyLimit: 4 * 1024, schema: { body: ConfirmBody, response: { 200: ConfirmApproved, '4xx': ConfirmRefused, '5xx': ConfirmRefused } } },
  async (request, reply) => {
    const held = await floorHold(floorKey, request.body.merchant_uid, request.body.imp_uid);
    if (held === 1) return { approved: true as const, hold_expires_at: expires };
    return reply.status(409).send({ code: 'SOLD_OUT', reason: 'sold out', message: 'sold out' });
  },
);
const url = await app.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1' });
console.log(url);
process.once('SIGTERM', () => void app.close().then(() => redis.del(floorKey)).finally(() => process.exit(0)));
