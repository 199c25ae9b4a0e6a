/**
 * The API as a fastify application. Dependencies come in built (see server.ts), so tests build the
 * same app against their own database, Redis prefix and queues.
 */
import type { Duplex } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions, type RawServerDefault } from 'fastify';
import underPressure from '@fastify/under-pressure';
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { REFUSAL_REASONS } from '@dropgate/domain';
import type { AppDeps } from './deps.ts';
import { errorsPlugin } from './plugins/errors.plugin.ts';
import { EventLoopGate } from './lib/event-loop-gate.ts';
import { connectionLimit, limitConnections } from './lib/connection-limit.ts';
import { sharedCompilers } from './lib/schema-compilers.ts';
import { adminRoutes } from './routes/admin.routes.ts';
import { queueRoutes } from './routes/queue.routes.ts';
import { storefrontRoutes } from './routes/storefront.routes.ts';
import { lagReserveMs, portoneRoutes } from './routes/portone.routes.ts';
import { opsRoutes } from './routes/ops.routes.ts';

export type { AppDeps } from './deps.ts';

/** Query parameters that carry secrets: never written to a log. */
const SECRET_QUERY_PARAMS = ['token'];

/**
 * How a request appears in the access log: method, URL with secret query values redacted (the V1
 * webhook token rides in its URL), and the client address. Headers (Authorization) are left out.
 */
export function requestLogSerializer(req: { method: string; url: string; ip?: string; hostname?: string }) {
  let url = req.url;
  const q = url.indexOf('?');
  if (q >= 0) {
    const params = new URLSearchParams(url.slice(q + 1));
    for (const name of SECRET_QUERY_PARAMS) if (params.has(name)) params.set(name, 'REDACTED');
    url = `${url.slice(0, q)}?${params.toString()}`;
  }
  return { method: req.method, url, remoteAddress: req.ip, hostname: req.hostname };
}

/** Node's parser refused the request (see `clientErrorHandler`): answered `{code, message}`, then closed. */
function clientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, code, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout', 'REQUEST_TIMEOUT', 'the request did not arrive in time']
      : error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', 'the request headers are too large']
        : [400, 'Bad Request', 'BAD_REQUEST', 'the request is not valid HTTP'];
  const body = JSON.stringify({ code, message });
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy(error);
}

export async function buildApp(deps: AppDeps, opts: { logger?: FastifyServerOptions['logger'] } = {}): Promise<FastifyInstance<RawServerDefault>> {
  const trustProxy = deps.config.trustProxy;
  const app = Fastify({
    logger: opts.logger ?? false,
    // fastify takes a hop count as a function of the hop index.
    trustProxy: typeof trustProxy === 'number' ? (_address: string, hop: number) => hop < trustProxy : trustProxy,
    bodyLimit: 16 * 1024,
    // Unknown fields are refused (additionalProperties: false), never silently dropped; no coercion.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // Compiled once per process, not once per app (tests build many apps).
    schemaController: { compilersFactory: sharedCompilers },
    return503OnClosing: true,
    // What the router refuses itself (a path parameter over 100 characters, a malformed URL component)
    // and what Node's parser refuses before fastify sees a request (headers too large, a request not
    // sent in time, a malformed one) answer `{code, message}` like every other error.
    frameworkErrors: (error, _request, reply) => {
      const tooLong = (error as { code?: string }).code === 'FST_ERR_MAX_PARAM_LENGTH';
      const raw = reply as unknown as { status(code: number): { send(body: unknown): unknown } };
      void raw.status(tooLong ? 414 : 400).send(tooLong
        ? { code: 'URI_TOO_LONG', message: 'a path parameter is longer than 100 characters' }
        : { code: 'BAD_URL', message: 'the URL is not valid' });
    },
    clientErrorHandler: clientError,
    // Slow clients (slow loris) cannot hold connections: the whole request must arrive within
    // requestTimeout (else 408 and close), and a connection idle for connectionTimeout is closed.
    // Neither bounds the time a handler takes to answer (the confirm keeps its own budget).
    requestTimeout: deps.config.requestTimeoutMs,
    connectionTimeout: deps.config.connectionTimeoutMs,
    http: {
      // An HTTP/1.1 request without Host is refused by the hook below with `{code, message}`; Node's
      // own refusal is an empty 400.
      requireHostHeader: false,
      headersTimeout: deps.config.requestTimeoutMs,
      // Node checks those deadlines on this interval (30 s by default, which would triple a 10 s one).
      connectionsCheckingInterval: Math.min(1_000, Math.max(100, Math.floor(deps.config.requestTimeoutMs / 4))),
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // At most MAX_CONNECTIONS connections, so idle ones cannot use up the process's open files; one that
  // comes at the bound closes the oldest connection with no request under way and is kept, so whoever
  // holds connections open without using them cannot keep everyone else out (see connection-limit.ts).
  limitConnections(app.server, connectionLimit(deps.config.maxConnections));

  // RFC 9112 3.2: an HTTP/1.1 request without Host is a 400 (Node's own check answers it with no body).
  // A body in a content coding dropgate does not decode (gzip, ...) is 415 (RFC 9110 15.5.16), not read
  // as if it were plain (attack round 20B: a plain body marked gzip was taken).
  // PortOne's confirm calls show a refusal's `reason` (V1) or `errorMessage` (V2) to the buyer, and their
  // answers' schemas require it: without it the refusal failed to serialize and went out as 503.
  const early = (request: FastifyRequest, code: string, message: string) =>
    request.url.startsWith('/portone/') ? { code, message, reason: REFUSAL_REASONS.BAD_REQUEST, errorMessage: REFUSAL_REASONS.BAD_REQUEST } : { code, message };
  app.addHook('onRequest', (request, reply, done) => {
    const headers = request.raw.headers;
    if (headers.host === undefined && request.raw.httpVersion === '1.1') {
      void reply.status(400).header('connection', 'close').send(early(request, 'BAD_REQUEST', 'an HTTP/1.1 request needs a Host header'));
      return;
    }
    const coding = headers['content-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'identity' && coding.trim() !== '') {
      void reply.status(415).send(early(request, 'UNSUPPORTED_MEDIA_TYPE', 'bodies are not decoded: send them without Content-Encoding'));
      return;
    }
    done();
  });
  // An Expect other than 100-continue (which Node answers itself): 417 with `{code, message}`, where
  // Node's own answer has no body.
  app.server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify({ code: 'EXPECTATION_FAILED', message: 'only "Expect: 100-continue" is supported' });
    res.writeHead(417, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });

  // JSON only (and form bodies for webhooks, registered on that route's plugin): anything else is 415.
  app.removeContentTypeParser('text/plain');
  await app.register(errorsPlugin);
  await app.register(opsRoutes, { deps });

  // Everything that does work sheds load before it queues past the confirm deadline.
  await app.register(async (busy) => {
    // The event loop's delay, measured by us (see EventLoopGate) from the moment the app is ready;
    // under-pressure sheds through its health check.
    const gate = new EventLoopGate(deps.config.maxEventLoopDelayMs);
    busy.addHook('onReady', async () => gate.open());
    busy.addHook('onClose', async () => gate.close());
    await busy.register(underPressure, {
      healthCheckInterval: 100,
      healthCheck: async () => {
        const keepsUp = gate.keepsUp();
        deps.metrics.confirmLagReserve.set(lagReserveMs(deps.config.confirmBudgetMs, gate.recentLagMs()) / 1000);
        return keepsUp;
      },
      retryAfter: 1,
      exposeStatusRoute: false,
      pressureHandler: (_request, reply, type) => {
        deps.metrics.shed.inc({ reason: type === 'healthCheck' ? 'event_loop_delay' : String(type) });
        void reply
          .status(503)
          .header('retry-after', '1')
          .send({ code: 'OVERLOADED', reason: REFUSAL_REASONS.OVERLOADED, message: 'the service is overloaded; try again shortly' });
      },
    });
    // ORDERS_PER_IP_PER_MINUTE: only the routes that say so (lib/buyers.ts perAddressLimit) are limited.
    if (deps.config.ordersPerIpPerMinute > 0) await busy.register(rateLimit, { global: false, cache: 100_000 });
    await busy.register(adminRoutes, { deps });
    await busy.register(storefrontRoutes, { deps });
    await busy.register(queueRoutes, { deps });
    await busy.register(portoneRoutes, { deps, loopLagMs: () => gate.recentLagMs() });
  });
  return app;
}
