/**
 * The simulator's HTTP face: PortOne V1 REST routes (envelope `{code, message, response}`, bearer
 * tokens), V2 REST routes (`Authorization: PortOne <secret>`, `{type, message}` errors), REST faults
 * for both, and the `/sim/*` control routes (plain JSON, `{code, message}` errors). V1 and V2 share
 * `GET /payments/{id}`: the Authorization scheme tells which API is asked.
 */
import formbody from '@fastify/formbody';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { SimulatorEngine, V2RestResult } from './engine.ts';
import { SimError, type SimErrorCode } from './errors.ts';
import { MESSAGES } from './messages.ts';
import type { SimLogLevel } from './types.ts';
import { parseOptionalObject } from './validate.ts';

/** PortOne's envelope. */
interface Envelope {
  code: number;
  message: string | null;
  response: unknown;
}

const envelope = (code: number, message: string | null, response: unknown = null): Envelope => ({ code, message, response });

const SIM_ERROR_STATUS: Record<SimErrorCode, number> = {
  INVALID_REQUEST: 400,
  PAYMENT_NOT_FOUND: 404,
  PAYMENT_NOT_PAID: 409,
  NO_NOTICE_URL: 409,
  ALREADY_PAID: 409,
};

const isSimRoute = (url: string): boolean => url === '/sim' || url.startsWith('/sim/');

/** Builds the fastify app around an engine; the caller listens and closes. */
export async function buildApp(engine: SimulatorEngine, opts: { logLevel?: SimLogLevel } = {}): Promise<FastifyInstance> {
  const level = opts.logLevel ?? 'silent';
  const app = Fastify({
    // Off by default: a drop sends thousands of requests per second and pino writes synchronously.
    // At `warn`, request lines (info) are dropped while errors still show.
    logger: level === 'silent' ? false : { level },
    // Close keep-alive connections on close(), or tests wait for idle sockets to time out.
    forceCloseConnections: true,
  });
  // PortOne accepts form-encoded bodies too (getToken is often called that way).
  await app.register(formbody);

  // One error mapping: PortOne routes answer an envelope, simulator routes `{code, message}`.
  app.setErrorHandler((err: FastifyError | SimError, request, reply) => {
    if (err instanceof SimError) {
      return reply.code(SIM_ERROR_STATUS[err.code]).send({ code: err.code, message: err.message });
    }
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) request.log.error({ err }, 'simulator error');
    if (isSimRoute(request.url)) {
      return reply
        .code(status)
        .send(status < 500 ? { code: 'INVALID_REQUEST', message: err.message } : { code: 'INTERNAL', message: 'internal error' });
    }
    return reply.code(status).send(envelope(-1, status < 500 ? MESSAGES.badRequest : MESSAGES.internal));
  });
  app.setNotFoundHandler((request, reply) => {
    if (isSimRoute(request.url)) return reply.code(404).send({ code: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` });
    return reply.code(404).send(envelope(-1, MESSAGES.routeNotFound));
  });

  await app.register(async (rest) => restRoutes(rest, engine));
  await app.register(async (sim) => simRoutes(sim, engine), { prefix: '/sim' });
  return app;
}

/** PortOne V1 REST. */
async function restRoutes(rest: FastifyInstance, engine: SimulatorEngine): Promise<void> {
  // REST faults apply to every PortOne route, getToken included, before anything else.
  rest.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (engine.restListener) await engine.restListener({ method: request.method, url: request.url });
    const faults = engine.faults;
    const latency = faults.rest_latency_ms ?? 0;
    if (latency > 0) await new Promise((resolve) => setTimeout(resolve, latency));
    const failureRate = faults.rest_failure_rate ?? 0;
    if (faults.rest_down === true || (failureRate > 0 && Math.random() < failureRate)) {
      return reply.code(503).send(envelope(-1, MESSAGES.unavailable));
    }
  });

  rest.post('/users/getToken', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const token = engine.issueToken(body['imp_key'], body['imp_secret']);
    if (token === null) return reply.code(401).send(envelope(-1, MESSAGES.badCredentials));
    return envelope(0, null, token);
  });

  await rest.register(async (v2) => v2Routes(v2, engine));

  await rest.register(async (authed) => {
    authed.addHook('preHandler', async (request: FastifyRequest, reply: FastifyReply) => {
      // V2's GET /payments/{paymentId} and GET /payments share these paths: their handlers check V2's credentials.
      if (isV2Request(request) && (request.routeOptions.url === '/payments/:imp_uid' || request.routeOptions.url === '/payments')) return;
      if (!engine.isAuthorized(request.headers.authorization)) {
        return reply.code(401).send(envelope(-1, MESSAGES.unauthorized));
      }
    });

    // `GET /payments?imp_uid[]=a&imp_uid[]=b`: the payments PortOne knows among those asked (at most
    // 100); none known is a 404, as for one.
    authed.get<{ Querystring: Record<string, string | string[] | undefined> }>('/payments', async (request, reply) => {
      if (isV2Request(request)) {
        return v2Answer(reply, engine.isV2Authorized(request.headers.authorization) ? engine.v2ListPayments(request.query['requestBody']) : V2_UNAUTHORIZED);
      }
      const raw = request.query['imp_uid[]'];
      const asked = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
      if (asked.length === 0 || asked.length > 100) return reply.code(400).send(envelope(1, 'imp_uid[] 는 1개 이상 100개 이하로 지정해야 합니다.'));
      const found = asked.map((imp) => engine.getV1Payment(imp)).filter((p) => p !== null);
      if (found.length === 0) return reply.code(404).send(envelope(1, MESSAGES.paymentNotFound));
      return envelope(0, null, found);
    });

    authed.get<{ Params: { imp_uid: string } }>('/payments/:imp_uid', async (request, reply) => {
      if (isV2Request(request)) return v2Answer(reply, engine.isV2Authorized(request.headers.authorization) ? engine.v2GetPayment(request.params.imp_uid) : V2_UNAUTHORIZED);
      const payment = engine.getV1Payment(request.params.imp_uid);
      if (payment === null) return reply.code(404).send(envelope(1, MESSAGES.paymentNotFound));
      return envelope(0, null, payment);
    });

    // `GET /payments/status/{payment_status}?from=&to=&page=&limit=&sorting=`: the store's payments in a status.
    authed.get<{ Params: { payment_status: string }; Querystring: Record<string, string | undefined> }>('/payments/status/:payment_status', async (request, reply) => {
      const q = request.query;
      const time = (value: string | undefined) => (value === undefined || value === '' ? null : Number(value));
      const from = time(q['from']);
      const to = time(q['to']);
      if ((from !== null && !Number.isFinite(from)) || (to !== null && !Number.isFinite(to))) return reply.code(400).send(envelope(1, 'from, to 는 UNIX timestamp 여야 합니다.'));
      const page = engine.listPayments(request.params.payment_status, from, to, Number(q['page'] ?? 1), Number(q['limit'] ?? 20), q['sorting']);
      if (page === null) return reply.code(400).send(envelope(1, 'payment_status 가 올바르지 않습니다.'));
      return envelope(0, null, page);
    });

    const find = async (
      request: FastifyRequest<{ Params: { merchant_uid: string; payment_status?: string } }>,
      reply: FastifyReply,
    ): Promise<Envelope> => {
      const payment = engine.findPayment(request.params.merchant_uid, request.params.payment_status);
      if (payment === null) return reply.code(404).send(envelope(1, MESSAGES.paymentNotFound));
      return envelope(0, null, payment);
    };
    authed.get('/payments/find/:merchant_uid', find);
    authed.get('/payments/find/:merchant_uid/:payment_status', find);

    const findAll = async (
      request: FastifyRequest<{ Params: { merchant_uid: string; payment_status?: string }; Querystring: { page?: string; sorting?: string } }>,
      reply: FastifyReply,
    ): Promise<Envelope> => {
      const { merchant_uid: merchantUid, payment_status: status } = request.params;
      const page = engine.findAllPayments(merchantUid, status, Number(request.query.page ?? 1), request.query.sorting);
      if (page === null) return reply.code(404).send(envelope(1, MESSAGES.paymentNotFound));
      return envelope(0, null, page);
    };
    authed.get('/payments/findAll/:merchant_uid', findAll);
    authed.get('/payments/findAll/:merchant_uid/:payment_status', findAll);

    authed.post('/payments/cancel', async (request, reply) => {
      if (engine.takeCancelFailure()) return reply.code(503).send(envelope(-1, MESSAGES.unavailable));
      const result = engine.cancelViaApi((request.body ?? {}) as Record<string, unknown>);
      // Business refusals are HTTP 200 with code 1, as PortOne answers them.
      return result.ok ? envelope(0, null, result.response) : envelope(1, result.message);
    });

    authed.post('/payments/prepare', async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const result = engine.prepare(body['merchant_uid'], body['amount']);
      if (result === null) return reply.code(400).send(envelope(-1, MESSAGES.prepareInvalid));
      return result.ok ? envelope(0, null, result.response) : envelope(1, result.message);
    });

    authed.get<{ Params: { merchant_uid: string } }>('/payments/prepare/:merchant_uid', async (request, reply) => {
      const prepared = engine.getPrepared(request.params.merchant_uid);
      if (prepared === null) return reply.code(404).send(envelope(1, MESSAGES.prepareNotFound));
      return envelope(0, null, prepared);
    });
  });
}

const isV2Request = (request: FastifyRequest): boolean => request.headers.authorization?.startsWith('PortOne ') === true;

const V2_UNAUTHORIZED: V2RestResult = { ok: false, failure: { status: 401, type: 'UNAUTHORIZED', message: '인증 정보가 올바르지 않습니다.' } };

function v2Answer(reply: FastifyReply, result: V2RestResult): FastifyReply {
  if (result.ok) return reply.code(200).send(result.body);
  return reply.code(result.failure.status).send({ type: result.failure.type, message: result.failure.message, ...result.failure.extra });
}

/**
 * A V2 request body: JSON, which `@portone/server-sdk` sends without a content type (so it arrives
 * as text/plain). null when it is not a JSON object.
 */
function v2Body(body: unknown): Record<string, unknown> | null {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return null;
    }
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** PortOne V2 REST (besides `GET /payments/{paymentId}`, served with V1's route above). */
async function v2Routes(v2: FastifyInstance, engine: SimulatorEngine): Promise<void> {
  v2.addHook('preHandler', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!engine.isV2Authorized(request.headers.authorization)) return v2Answer(reply, V2_UNAUTHORIZED);
  });
  const invalidBody: V2RestResult = { ok: false, failure: { status: 400, type: 'INVALID_REQUEST', message: 'the body must be a JSON object' } };
  type Req = FastifyRequest<{ Params: { payment_id: string } }>;
  v2.post('/payments/:payment_id/cancel', async (request: Req, reply) => {
    const body = v2Body(request.body);
    return v2Answer(reply, body === null ? invalidBody : engine.v2Cancel(request.params.payment_id, body));
  });
  v2.post('/payments/:payment_id/pre-register', async (request: Req, reply) => {
    const body = v2Body(request.body);
    return v2Answer(reply, body === null ? invalidBody : engine.v2PreRegister(request.params.payment_id, body));
  });
  v2.post('/payments/:payment_id/confirm', async (request: Req, reply) => {
    const body = v2Body(request.body);
    return v2Answer(reply, body === null ? invalidBody : await engine.v2Confirm(request.params.payment_id, body));
  });
}

/** The simulator's controls, under `/sim`. */
async function simRoutes(sim: FastifyInstance, engine: SimulatorEngine): Promise<void> {
  sim.get('/healthz', async () => ({ ok: true }));

  sim.post('/v1/payments', async (request) => engine.pay(request.body as never));
  sim.post('/v2/payments', async (request) => engine.payV2(request.body as never));
  // What a merchant configures to take the simulator's V2 requests: its webhook secret and store.
  sim.get('/v2/settings', async () => ({ webhook_secret: engine.webhookSecret, store_id: engine.storeId }));

  sim.get<{ Params: { imp_uid: string } }>('/v1/payments/:imp_uid', async (request) => {
    const payment = engine.getPayment(request.params.imp_uid);
    if (payment === null) throw new SimError('PAYMENT_NOT_FOUND', `no payment ${request.params.imp_uid}`);
    return { payment };
  });

  sim.post<{ Params: { imp_uid: string } }>('/v1/payments/:imp_uid/cancel', async (request) => {
    const body = parseOptionalObject(request.body, 'body') ?? {};
    return { payment: engine.cancelFromConsole(request.params.imp_uid, { amount: body['amount'], reason: body['reason'] }) };
  });

  sim.post<{ Params: { imp_uid: string } }>('/v1/payments/:imp_uid/webhook', async (request) => {
    const body = parseOptionalObject(request.body, 'body') ?? {};
    const override = parseOptionalObject(body['body'], 'body.body');
    await engine.sendWebhook(request.params.imp_uid, body['status'], override);
    return { sent: true, webhooks: engine.ledger({ imp_uid: request.params.imp_uid }).webhooks };
  });

  sim.put<{ Params: { imp_uid: string } }>('/v1/payments/:imp_uid/status', async (request) => {
    const body = parseOptionalObject(request.body, 'body') ?? {};
    const failReason = body['fail_reason'];
    if (failReason !== undefined && typeof failReason !== 'string') throw new SimError('INVALID_REQUEST', 'fail_reason must be a string');
    const options: { failReason?: string; webhook?: boolean } = { webhook: body['webhook'] === true };
    if (failReason !== undefined) options.failReason = failReason;
    return { payment: engine.setPaymentStatus(request.params.imp_uid, body['status'], options) };
  });

  sim.get<{ Querystring: { merchant_uid_prefix?: string } }>('/pending', async (request) => {
    const prefix = typeof request.query.merchant_uid_prefix === 'string' ? request.query.merchant_uid_prefix : '';
    return { pending: engine.pending(prefix) };
  });

  sim.get('/faults', async () => engine.faults);
  sim.put('/faults', async (request) => engine.setFaults(request.body ?? {}));

  sim.post('/reset', async () => {
    engine.reset();
    return { ok: true };
  });

  sim.get<{ Querystring: { imp_uid?: string; merchant_uid?: string } }>('/ledger', async (request) => {
    const filter: { imp_uid?: string; merchant_uid?: string } = {};
    if (typeof request.query.imp_uid === 'string') filter.imp_uid = request.query.imp_uid;
    if (typeof request.query.merchant_uid === 'string') filter.merchant_uid = request.query.merchant_uid;
    return engine.ledger(filter);
  });
}
