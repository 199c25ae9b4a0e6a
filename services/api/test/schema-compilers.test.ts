/**
 * The API's apps share their compiled route schemas within a process (lib/schema-compilers.ts): the
 * same schema object compiles once, different Ajv or serializer options never share, and what is
 * shared still validates and serializes as fastify's own compilers would.
 */
import { describe, expect, it } from 'vitest';
import { sharedCompilers } from '../src/lib/schema-compilers.ts';

const body = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'], additionalProperties: false };
const strict = { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } };
const route = (schema: object) => ({ schema, method: 'POST', url: '/x', httpPart: 'body', httpStatus: '200' });

describe('shared schema compilers', () => {
  it('compile a schema object once for every app with the same options, and validate as before', () => {
    const a = sharedCompilers.buildValidator!({}, strict as never)(route(body) as never);
    const b = sharedCompilers.buildValidator!({}, strict as never)(route(body) as never);
    expect(b).toBe(a);
    expect(a({ n: 1 })).toBe(true);
    expect(a({ n: '1' })).toBe(false);
    expect(a({ n: 1, extra: true })).toBe(false);
    // Other options (coercion) get a compiler of their own: '1' becomes 1 there, never here.
    const coercing = sharedCompilers.buildValidator!({}, { customOptions: { coerceTypes: true } } as never)(route(body) as never);
    expect(coercing).not.toBe(a);
    expect(coercing({ n: '1' })).toBe(true);
    expect(a({ n: '1' })).toBe(false);
  });

  it('build one serializer per schema object and options, and serialize as before', () => {
    const reply = { type: 'object', properties: { n: { type: 'integer' } } };
    const s1 = sharedCompilers.buildSerializer!({}, {})(route(reply) as never);
    const s2 = sharedCompilers.buildSerializer!({}, {})(route(reply) as never);
    expect(s2).toBe(s1);
    expect(s1({ n: 2, secret: 'x' })).toBe('{"n":2}');
    // An equal but distinct schema object is compiled on its own (identity, not shape, is the key).
    expect(sharedCompilers.buildSerializer!({}, {})(route({ ...reply }) as never)).not.toBe(s1);
  });
});
