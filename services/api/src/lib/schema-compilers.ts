/**
 * The route schemas' compilers, shared by every app this process builds. fastify makes a fresh Ajv
 * instance and fresh response serializers for each app, compiling every route's schemas again; a
 * process builds one app in production, but the tests build an app for every stack they start, and
 * compiling the same schemas over and over was a noticeable part of the suite's CPU. Shared here:
 * one validator compiler per distinct set of Ajv options and shared schemas (`@fastify/ajv-compiler`'s
 * own pool), whose Ajv keeps each compiled schema by the schema object (the routes' schemas are
 * module constants), and one response serializer per schema object and serializer options. The
 * generated functions hold no state, so sharing them between apps changes nothing but the time.
 */
import { AjvCompiler } from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { FastifyServerOptions } from 'fastify';

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type BuildSerializer = NonNullable<CompilersFactory['buildSerializer']>;

const buildValidator = AjvCompiler() as NonNullable<CompilersFactory['buildValidator']>;

const serializerFactory = SerializerSelector() as BuildSerializer;
const serializerPools = new Map<string, ReturnType<BuildSerializer>>();

const buildSerializer: BuildSerializer = (externalSchemas, serializerOpts) => {
  const key = JSON.stringify([externalSchemas, serializerOpts ?? null]);
  let compiler = serializerPools.get(key);
  if (!compiler) {
    const build = serializerFactory(externalSchemas, serializerOpts);
    const built = new WeakMap<object, ReturnType<typeof build>>();
    compiler = (route) => {
      const schema = route.schema as object;
      let fn = built.get(schema);
      if (!fn) {
        fn = build(route);
        built.set(schema, fn);
      }
      return fn;
    };
    serializerPools.set(key, compiler);
  }
  return compiler;
};

/** fastify's `schemaController.compilersFactory` for the API's apps. */
export const sharedCompilers: CompilersFactory = { buildValidator, buildSerializer };
