/**
 * One place that turns errors into HTTP answers: domain codes to statuses, fastify's own errors
 * (validation, bad JSON, oversized bodies, wrong media types) to clear 4xx codes, and anything else to
 * a 500 that reveals nothing. Every body is `{code, message}`.
 */
import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance } from 'fastify';
import { DomainError } from '@dropgate/domain';
import { ERROR_STATUS, HttpError } from '../lib/http-errors.ts';
import { isDatabaseUnavailableError, isUnstorableTextError } from '@dropgate/db';
import { isRedisUnavailableError } from '@dropgate/redis';
import { PATTERN_MESSAGES } from '../schemas.ts';


export interface HttpErrorBody {
  statusCode: number;
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/** fastify's validation message, with our own patterns explained instead of quoted. */
function validationMessage(e: FastifyError): string {
  const first = e.validation?.[0];
  const pattern = first?.keyword === 'pattern' ? (first.params as { pattern?: unknown }).pattern : undefined;
  const explained = typeof pattern === 'string' ? PATTERN_MESSAGES[pattern] : undefined;
  if (!first || !explained) return e.message;
  return `${e.validationContext ?? 'request'}${first.instancePath} ${explained}`;
}

/** Maps any thrown error to a status and a safe body. */
export function toHttpError(error: unknown): HttpErrorBody {
  if (error instanceof DomainError) {
    return { statusCode: ERROR_STATUS[error.code], code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) };
  }
  if (error instanceof HttpError) return { statusCode: ERROR_STATUS[error.code], code: error.code, message: error.message };
  const e = error as FastifyError;
  if (e.validation) {
    return { statusCode: 400, code: 'VALIDATION_FAILED', message: validationMessage(e) };
  }
  // Second guard behind the schemas: text Postgres cannot store (a NUL) is the caller's, not a 500.
  if (isUnstorableTextError(error)) {
    return { statusCode: 400, code: 'VALIDATION_FAILED', message: 'the request holds characters that cannot be stored (such as NUL)' };
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { statusCode: 413, code: 'PAYLOAD_TOO_LARGE', message: 'request body is too large' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { statusCode: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'send application/json' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { statusCode: 400, code: 'INVALID_JSON', message: 'request body is empty' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { statusCode: 400, code: 'INVALID_JSON', message: 'request body is not valid JSON' };
  }
  if (error instanceof SyntaxError || e.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') {
    return { statusCode: 400, code: 'INVALID_JSON', message: 'request body is not valid JSON' };
  }
  // The request's own failure (fastify and Node mark it 4xx): a client that drops its upload raises
  // ECONNRESET 'aborted' with status 400, which is not Redis or Postgres going away (attack round 23A:
  // anyone could write 'confirm failed' error lines, classed as Redis down, at will).
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { statusCode: e.statusCode, code: 'BAD_REQUEST', message: e.message };
  }
  // A dependency restarting is not a bug: answer at once that it is worth retrying shortly.
  if (isRedisUnavailableError(error) || isDatabaseUnavailableError(error)) {
    return { statusCode: 503, code: 'NOT_READY', message: 'the service is not ready (a dependency is unavailable); try again shortly' };
  }
  return { statusCode: 500, code: 'INTERNAL', message: 'internal error' };
}

export const errorsPlugin = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((error, request, reply) => {
      const body = toHttpError(error);
      if (body.code === 'NOT_READY') request.log.warn({ reason: (error as Error).message }, 'dependency unavailable');
      else if (body.statusCode >= 500) request.log.error({ err: error }, 'request failed');
      const { statusCode, ...rest } = body;
      if (statusCode === 503) void reply.header('retry-after', '1');
      return reply.status(statusCode).send(rest);
    });
    app.setNotFoundHandler((request, reply) =>
      reply.status(404).send({ code: 'NOT_FOUND', message: `no route for ${request.method} ${request.url.split('?')[0]}` }),
    );
  },
  { name: 'dropgate-errors' },
);
