/**
 * A small stand-in of the k6 (v1) JavaScript API, so the load-test scripts in loadtest/ can be
 * loaded as ES modules and run for an iteration under Node, with no k6 installed; and a checker of
 * their `options` (scenarios and thresholds) against what k6 accepts.
 *
 * The stand-in covers the modules the scripts import (k6, k6/http, k6/metrics, k6/execution, k6/data,
 * k6/encoding). A script importing anything else fails to load with a message saying so, rather than
 * silently testing less. HTTP requests are answered by a function the test gives, so a run exercises
 * the script's own logic (its checks and custom metrics) against answers the test chooses.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';

/** k6's built-in metrics (k6 v1, HTTP and core), by type. */
export const BUILTIN_METRICS: Readonly<Record<string, MetricType>> = {
  vus: 'gauge', vus_max: 'gauge', iterations: 'counter', iteration_duration: 'trend', dropped_iterations: 'counter',
  data_received: 'counter', data_sent: 'counter', checks: 'rate', group_duration: 'trend',
  http_reqs: 'counter', http_req_failed: 'rate', http_req_duration: 'trend', http_req_blocked: 'trend',
  http_req_connecting: 'trend', http_req_tls_handshaking: 'trend', http_req_sending: 'trend',
  http_req_waiting: 'trend', http_req_receiving: 'trend',
};

export interface HttpRequest {
  method: string;
  url: string;
  body: unknown;
  params: { headers?: Record<string, string>; tags?: Record<string, string>; timeout?: string | number } | undefined;
}
export interface HttpAnswer {
  status: number;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  duration?: number;
}

export interface StandIn {
  /** Custom metrics the script created, by name. */
  metrics: Map<string, { type: MetricType; isTime: boolean; samples: Array<{ value: number; tags?: Record<string, string> }> }>;
  checks: Array<{ name: string; ok: boolean }>;
  requests: HttpRequest[];
  logs: string[];
  /** Set by the test around each call: the VU and iteration numbers exec reports. */
  iteration: { vu: number; iteration: number; scenario: string; executor: string };
}

const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
const METRIC_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/;

/** A k6 duration: a string like `30s` / `1m30s` / `500ms`, or a number of milliseconds. */
export function isDuration(value: unknown): boolean {
  return (typeof value === 'string' && DURATION.test(value)) || (typeof value === 'number' && Number.isFinite(value) && value >= 0);
}

function makeModules(standIn: StandIn, respond: (req: HttpRequest) => HttpAnswer): Record<string, Record<string, unknown>> {
  const metric = (type: MetricType) =>
    class {
      readonly name: string;
      constructor(name: string, isTime = false) {
        if (!METRIC_NAME.test(name)) throw new Error(`k6/metrics: invalid metric name ${JSON.stringify(name)}`);
        const known = standIn.metrics.get(name) ?? (BUILTIN_METRICS[name] ? { type: BUILTIN_METRICS[name] } : undefined);
        if (known && known.type !== type) throw new Error(`k6/metrics: ${name} is already a ${known.type}, not a ${type}`);
        this.name = name;
        if (!standIn.metrics.has(name)) standIn.metrics.set(name, { type, isTime, samples: [] });
      }
      add(value: unknown, tags?: Record<string, string>): void {
        const n = typeof value === 'boolean' ? Number(value) : value;
        if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error(`k6/metrics: ${this.name}.add(${String(value)}): not a number`);
        if (tags !== undefined && (typeof tags !== 'object' || Object.values(tags).some((t) => typeof t !== 'string'))) throw new Error(`k6/metrics: ${this.name}.add: tags must be strings`);
        standIn.metrics.get(this.name)!.samples.push({ value: n, ...(tags ? { tags } : {}) });
      }
    };

  const request = (method: string, url: unknown, body: unknown, params?: HttpRequest['params']) => {
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) throw new Error(`k6/http: ${method} needs an absolute http(s) URL, got ${String(url)}`);
    if (params?.timeout !== undefined && !isDuration(params.timeout)) throw new Error(`k6/http: timeout ${String(params.timeout)} is not a duration`);
    const req: HttpRequest = { method, url, body, params };
    standIn.requests.push(req);
    const answer = respond(req);
    const text = answer.body === undefined ? '' : typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
    return {
      status: answer.status,
      body: text,
      url,
      headers: {},
      request: req,
      error: '',
      error_code: 0,
      timings: { duration: answer.duration ?? 5, waiting: answer.duration ?? 5, blocked: 0, connecting: 0, sending: 0, receiving: 0, tls_handshaking: 0 },
      json(selector?: string) {
        if (selector !== undefined) throw new Error('k6/http stand-in: json(selector) is not supported');
        return JSON.parse(text) as unknown;
      },
    };
  };

  const http = {
    request,
    get: (url: unknown, params?: HttpRequest['params']) => request('GET', url, null, params),
    head: (url: unknown, params?: HttpRequest['params']) => request('HEAD', url, null, params),
    del: (url: unknown, body?: unknown, params?: HttpRequest['params']) => request('DELETE', url, body ?? null, params),
    options: (url: unknown, body?: unknown, params?: HttpRequest['params']) => request('OPTIONS', url, body ?? null, params),
    post: (url: unknown, body?: unknown, params?: HttpRequest['params']) => request('POST', url, body ?? null, params),
    put: (url: unknown, body?: unknown, params?: HttpRequest['params']) => request('PUT', url, body ?? null, params),
    patch: (url: unknown, body?: unknown, params?: HttpRequest['params']) => request('PATCH', url, body ?? null, params),
    batch: (reqs: Array<[string, string, unknown?, HttpRequest['params']?]>) => reqs.map(([m, u, b, p]) => request(m, u, b ?? null, p)),
    expectedStatuses: (...ranges: Array<number | { min: number; max: number }>) => {
      for (const r of ranges) {
        if (typeof r === 'number' ? !Number.isInteger(r) : !(Number.isInteger(r.min) && Number.isInteger(r.max) && r.min <= r.max)) {
          throw new Error(`k6/http: expectedStatuses(${JSON.stringify(r)}): not a status or a {min, max} range`);
        }
      }
      return { ranges };
    },
    setResponseCallback: (callback: unknown) => {
      if (callback !== null && !(typeof callback === 'object' && callback && 'ranges' in callback)) throw new Error('k6/http: setResponseCallback takes expectedStatuses(...) or null');
    },
  };

  const check = (value: unknown, sets: Record<string, (v: unknown) => unknown>) => {
    let all = true;
    for (const [name, fn] of Object.entries(sets)) {
      const ok = typeof fn === 'function' ? Boolean(fn(value)) : Boolean(fn);
      standIn.checks.push({ name, ok });
      all &&= ok;
    }
    return all;
  };
  const k6 = {
    check,
    fail: (message?: string) => {
      throw new Error(message ?? 'fail');
    },
    group: (_name: string, fn: () => unknown) => fn(),
    sleep: (seconds: number) => {
      if (typeof seconds !== 'number' || seconds < 0) throw new Error(`k6: sleep(${String(seconds)})`);
    },
    randomSeed: () => undefined,
  };

  const it = standIn.iteration;
  const execution = {
    get vu() {
      return { idInTest: it.vu, idInInstance: it.vu, iterationInInstance: it.iteration, iterationInScenario: it.iteration, tags: {}, metrics: { tags: {}, metadata: {} } };
    },
    get scenario() {
      return { name: it.scenario, executor: it.executor, startTime: 0, progress: 0, iterationInInstance: it.iteration, iterationInTest: it.iteration };
    },
    instance: { iterationsCompleted: 0, iterationsInterrupted: 0, vusActive: 1, vusInitialized: 1, currentTestRunDuration: 0 },
    test: {
      abort: (reason?: string) => {
        throw new Error(`test aborted: ${reason ?? ''}`);
      },
      options: {},
    },
  };

  return {
    k6: { default: k6, ...k6 },
    'k6/http': { default: http, ...http },
    'k6/metrics': { Counter: metric('counter'), Gauge: metric('gauge'), Rate: metric('rate'), Trend: metric('trend') },
    'k6/execution': { default: execution },
    'k6/data': {
      SharedArray: class {
        constructor(name: string, fn: () => unknown) {
          const data = fn();
          if (typeof name !== 'string' || !Array.isArray(data)) throw new Error('k6/data: SharedArray(name, fn) needs a name and a function returning an array');
          return data;
        }
      },
    },
    'k6/encoding': {
      b64encode: (s: string) => Buffer.from(s).toString('base64'),
      b64decode: (s: string, _enc?: string, format?: string) => (format === 's' ? Buffer.from(s, 'base64').toString() : Buffer.from(s, 'base64')),
    },
  };
}

export interface LoadedScript {
  module: Record<string, unknown>;
  standIn: StandIn;
  /** Runs `fn` as one k6 call (setup, an iteration, teardown) with exec reporting `iteration`. */
  call<T>(fn: () => T, iteration?: Partial<StandIn['iteration']>): T;
}

/**
 * Loads the k6 script `file` as an ES module against the stand-in: a copy of it, with its `k6*`
 * imports pointed at stand-in modules, in a directory of its own (so each load evaluates afresh).
 * `__ENV` is `env`, as k6 passes the environment to scripts.
 */
export async function loadK6Script(file: string, env: Record<string, string>, respond: (req: HttpRequest) => HttpAnswer): Promise<LoadedScript> {
  const standIn: StandIn = { metrics: new Map(), checks: [], requests: [], logs: [], iteration: { vu: 1, iteration: 0, scenario: 'default', executor: 'per-vu-iterations' } };
  const modules = makeModules(standIn, respond);
  const dir = mkdtempSync(join(tmpdir(), 'dropgate-k6-'));
  const g = globalThis as Record<string, unknown>;
  try {
    const source = readFileSync(file, 'utf8').replace(/(\bfrom\s+|\bimport\s+)(['"])(k6(?:\/[^'"]*)?)\2/g, (_m, lead: string, _q: string, spec: string) => {
      if (!modules[spec]) throw new Error(`${basename(file)} imports ${spec}, which the k6 stand-in does not provide: add it to test/support/k6-stand-in.ts`);
      const target = `${spec.replace(/\//g, '-')}.mjs`;
      const names = Object.keys(modules[spec]!).filter((n) => n !== 'default');
      writeFileSync(
        join(dir, target),
        `const m = globalThis.__k6StandIn[${JSON.stringify(spec)}];\n` +
          ('default' in modules[spec]! ? 'export default m.default;\n' : '') +
          (names.length ? `export const { ${names.join(', ')} } = m;\n` : ''),
      );
      return `${lead}'./${target}'`;
    });
    const copy = join(dir, basename(file).replace(/\.js$/, '.mjs'));
    writeFileSync(copy, source);
    g.__k6StandIn = modules;
    g.__ENV = { ...env };
    const module = (await import(pathToFileURL(copy).href)) as Record<string, unknown>;
    return {
      module,
      standIn,
      call(fn, iteration = {}) {
        Object.assign(standIn.iteration, iteration);
        g.__ENV = { ...env };
        g.__VU = standIn.iteration.vu;
        g.__ITER = standIn.iteration.iteration;
        // k6 prints the script's console output; here it is kept for the test to read.
        const saved = { log: console.log, warn: console.warn, error: console.error };
        console.log = console.warn = console.error = (...args: unknown[]) => void standIn.logs.push(args.map(String).join(' '));
        try {
          return fn();
        } finally {
          Object.assign(console, saved);
        }
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Fields each executor requires, and those it also accepts (besides the common ones). */
const EXECUTORS: Record<string, { required: string[]; optional: string[] }> = {
  'shared-iterations': { required: [], optional: ['vus', 'iterations', 'maxDuration'] },
  'per-vu-iterations': { required: [], optional: ['vus', 'iterations', 'maxDuration'] },
  'constant-vus': { required: ['duration'], optional: ['vus'] },
  'ramping-vus': { required: ['stages'], optional: ['startVUs', 'gracefulRampDown'] },
  'constant-arrival-rate': { required: ['rate', 'duration', 'preAllocatedVUs'], optional: ['timeUnit', 'maxVUs'] },
  'ramping-arrival-rate': { required: ['stages', 'preAllocatedVUs'], optional: ['startRate', 'timeUnit', 'maxVUs'] },
  'externally-controlled': { required: ['duration'], optional: ['vus', 'maxVUs'] },
};
const COMMON = ['executor', 'startTime', 'gracefulStop', 'exec', 'env', 'tags', 'options'];
const DURATION_FIELDS = ['duration', 'maxDuration', 'startTime', 'gracefulStop', 'gracefulRampDown', 'timeUnit'];
const COUNT_FIELDS = ['vus', 'iterations', 'startVUs', 'preAllocatedVUs', 'maxVUs', 'rate', 'startRate'];

/** Aggregations a threshold may use on each metric type. */
const AGGREGATIONS: Record<MetricType, RegExp> = {
  counter: /^(count|rate)$/,
  gauge: /^value$/,
  rate: /^rate$/,
  trend: /^(avg|min|max|med|p\((\d+(\.\d+)?)\))$/,
};
const THRESHOLD = /^\s*(avg|min|max|med|count|rate|value|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/;
const THRESHOLD_KEY = /^([a-zA-Z_][a-zA-Z0-9_]*)(?:\{([^{}]+)\})?$/;
const TREND_STAT = /^(avg|min|med|max|count|p\(\d+(\.\d+)?\))$/;

/**
 * What k6 would refuse (or silently ignore) in `options`: unknown executors, missing or mistyped
 * executor fields, `exec` naming no exported function, thresholds that do not parse, name no
 * metric, or aggregate it in a way its type has not. Returns one sentence per problem; [] is valid.
 */
export function checkOptions(options: unknown, customMetrics: ReadonlyMap<string, { type: MetricType }>, exportedFunctions: readonly string[]): string[] {
  const problems: string[] = [];
  if (typeof options !== 'object' || options === null) return ['options is not an object'];
  const o = options as Record<string, unknown>;

  if (o.scenarios !== undefined) {
    if (typeof o.scenarios !== 'object' || o.scenarios === null || Object.keys(o.scenarios).length === 0) problems.push('scenarios must be an object with at least one scenario');
    for (const [name, raw] of Object.entries((o.scenarios ?? {}) as Record<string, unknown>)) {
      const at = `scenario ${name}`;
      if (!/^[a-zA-Z0-9_-]+$/.test(name)) problems.push(`${at}: the name may hold letters, digits, _ and - only`);
      if (typeof raw !== 'object' || raw === null) {
        problems.push(`${at}: not an object`);
        continue;
      }
      const s = raw as Record<string, unknown>;
      const executor = EXECUTORS[String(s.executor)];
      if (!executor) {
        problems.push(`${at}: unknown executor ${JSON.stringify(s.executor)} (k6 has ${Object.keys(EXECUTORS).join(', ')})`);
        continue;
      }
      for (const field of executor.required) if (s[field] === undefined) problems.push(`${at}: ${String(s.executor)} needs ${field}`);
      for (const field of Object.keys(s)) {
        if (!COMMON.includes(field) && !executor.required.includes(field) && !executor.optional.includes(field)) problems.push(`${at}: ${String(s.executor)} has no field ${field}`);
      }
      for (const field of DURATION_FIELDS) if (s[field] !== undefined && !isDuration(s[field])) problems.push(`${at}: ${field} ${JSON.stringify(s[field])} is not a duration`);
      for (const field of COUNT_FIELDS) {
        if (s[field] !== undefined && !(Number.isInteger(s[field]) && (s[field] as number) >= 0)) problems.push(`${at}: ${field} ${JSON.stringify(s[field])} is not a non-negative integer`);
      }
      if (s.executor === 'constant-vus' && s.vus === 0) problems.push(`${at}: constant-vus with 0 VUs runs nothing`);
      if (s.stages !== undefined) {
        const stages = s.stages;
        if (!Array.isArray(stages) || stages.length === 0) problems.push(`${at}: stages must be a non-empty array`);
        else stages.forEach((st: { duration?: unknown; target?: unknown }, i) => {
          if (!isDuration(st?.duration)) problems.push(`${at}: stages[${i}].duration ${JSON.stringify(st?.duration)} is not a duration`);
          if (!(Number.isInteger(st?.target) && (st.target as number) >= 0)) problems.push(`${at}: stages[${i}].target ${JSON.stringify(st?.target)} is not a non-negative integer`);
        });
      }
      const exec = s.exec ?? 'default';
      if (!exportedFunctions.includes(String(exec))) problems.push(`${at}: exec ${JSON.stringify(exec)} is not an exported function of the script`);
    }
  } else if (!exportedFunctions.includes('default')) {
    problems.push('no scenarios and no default function: k6 has nothing to run');
  }

  if (o.thresholds !== undefined) {
    if (typeof o.thresholds !== 'object' || o.thresholds === null) problems.push('thresholds must be an object');
    for (const [key, list] of Object.entries((o.thresholds ?? {}) as Record<string, unknown>)) {
      const m = THRESHOLD_KEY.exec(key);
      if (!m) {
        problems.push(`threshold ${JSON.stringify(key)}: not <metric> or <metric>{tag:value,...}`);
        continue;
      }
      const [, metric, tags] = m;
      if (tags !== undefined && !tags.split(',').every((t) => /^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*:\s*[^:]+$/.test(t))) problems.push(`threshold ${key}: tag filter ${JSON.stringify(tags)} is not tag:value,...`);
      const type = BUILTIN_METRICS[metric!] ?? customMetrics.get(metric!)?.type;
      if (!type) problems.push(`threshold ${key}: metric ${metric} is neither a k6 built-in nor created by the script`);
      if (!Array.isArray(list) || list.length === 0) {
        problems.push(`threshold ${key}: must be a non-empty array of expressions`);
        continue;
      }
      for (const entry of list) {
        const expression = typeof entry === 'string' ? entry : typeof entry === 'object' && entry !== null ? (entry as { threshold?: unknown }).threshold : undefined;
        if (typeof expression !== 'string') {
          problems.push(`threshold ${key}: ${JSON.stringify(entry)} is neither an expression nor {threshold, abortOnFail}`);
          continue;
        }
        if (typeof entry === 'object' && entry !== null) {
          const extra = Object.keys(entry).filter((k) => !['threshold', 'abortOnFail', 'delayAbortEval'].includes(k));
          if (extra.length) problems.push(`threshold ${key}: unknown fields ${extra.join(', ')}`);
          const delay = (entry as { delayAbortEval?: unknown }).delayAbortEval;
          if (delay !== undefined && !isDuration(delay)) problems.push(`threshold ${key}: delayAbortEval ${JSON.stringify(delay)} is not a duration`);
        }
        const e = THRESHOLD.exec(expression);
        if (!e) {
          problems.push(`threshold ${key}: ${JSON.stringify(expression)} does not parse (like p(99)<250, rate<0.01, count==0)`);
          continue;
        }
        const aggregation = e[1]!.replace(/\s+/g, '');
        if (e[2] !== undefined && !(Number(e[2]) >= 0 && Number(e[2]) <= 100)) problems.push(`threshold ${key}: percentile ${e[2]} is outside 0..100`);
        if (type && !AGGREGATIONS[type].test(aggregation)) problems.push(`threshold ${key}: ${aggregation} does not apply to ${metric}, a ${type}`);
      }
    }
  }

  for (const field of ['setupTimeout', 'teardownTimeout']) if (o[field] !== undefined && !isDuration(o[field])) problems.push(`${field} ${JSON.stringify(o[field])} is not a duration`);
  if (o.summaryTrendStats !== undefined) {
    if (!Array.isArray(o.summaryTrendStats)) problems.push('summaryTrendStats must be an array');
    else for (const stat of o.summaryTrendStats) if (typeof stat !== 'string' || !TREND_STAT.test(stat)) problems.push(`summaryTrendStats: ${JSON.stringify(stat)} is not a trend statistic`);
  }
  return problems;
}
