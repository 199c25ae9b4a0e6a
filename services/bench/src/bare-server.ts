/**
 * The baseline: a bare fastify endpoint with the confirm route's request and response schemas and the
 * API's fastify options, doing no I/O. Prints its URL on stdout once listening.
 */
import Fastify from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ConfirmApproved, ConfirmBody, ConfirmRefused } from '@dropgate/api/schemas';

const app = Fastify({ logger: false, bodyLimit: 16 * 1024, ajv: { customOptions: { removeAdditional: false, coerceTypes: false } } }).withTypeProvider<TypeBoxTypeProvider>();
const expires = new Date(Date.now() + 300_000).toISOString();
app.post(
  '/portone/v1/confirm',
  { bodyLimit: 4 * 1024, schema: { body: ConfirmBody, response: { 200: ConfirmApproved, '4xx': ConfirmRefused, '5xx': ConfirmRefused } } },
  async () => ({ approved: true as const, hold_expires_at: expires }),
);
const url = await app.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1' });
console.log(url);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
