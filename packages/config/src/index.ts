/**
 * Configuration, read once from the environment, validated against a schema and frozen.
 * Nothing else in dropgate reads `process.env`: services call {@link loadConfig} at start-up and pass
 * the result down. An invalid value throws a {@link ConfigError} naming the variable.
 */
import Type, { type Static } from 'typebox';
// The schema checker itself (what `typebox/value`'s Errors wraps), without the 440 other modules of
// `typebox/value` (parse, convert, clone, ...): about 0.2 s less CPU for every process that starts.
import Schema from 'typebox/schema';

const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const Url = (schemes: string[]) => Type.String({ pattern: `^(${schemes.join('|')})://[^\\s]+$` });

/** Every variable dropgate understands, with its default (when it has one). */
export const ConfigSchema = Type.Object({
  PORT: Port,
  HOST: Type.String({ minLength: 1 }),
  DATABASE_URL: Url(['postgres', 'postgresql']),
  REDIS_URL: Url(['redis', 'rediss']),
  /**
   * Redis Cluster seeds, `host:port` comma-separated: when set, every client (API, worker, BullMQ) is
   * an ioredis Cluster and REDIS_URL is not used.
   */
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: '^\\s*[^\\s,:]+:\\d{1,5}\\s*(,\\s*[^\\s,:]+:\\d{1,5}\\s*)*$' })),
  /** How many API processes `npm start` runs (they share PORT). */
  API_PROCESSES: Type.Integer({ minimum: 1, maximum: 64 }),
  /** How many worker processes `npm start` runs. */
  WORKER_PROCESSES: Type.Integer({ minimum: 1, maximum: 64 }),
  /** Bearer tokens: 16+ visible ASCII characters, no spaces (what an Authorization header carries). */
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16, pattern: '^[!-~]+$' })),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, pattern: '^[!-~]+$' })),
  CONFIRM_BUDGET_MS: Type.Integer({ minimum: 100, maximum: 4900 }),
  PORTONE_API_URL: Url(['http', 'https']),
  PORTONE_IMP_KEY: Type.Optional(Type.String({ minLength: 1 })),
  PORTONE_IMP_SECRET: Type.Optional(Type.String({ minLength: 1 })),
  PORTONE_V2_API_URL: Url(['http', 'https']),
  PORTONE_V2_API_SECRET: Type.Optional(Type.String({ minLength: 1 })),
  /** The V2 store (`store-...`): sent with every V2 call, and a signed request naming another store is refused. */
  PORTONE_V2_STORE_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,100}$' })),
  /** V2 Standard Webhooks secret(s), comma-separated: two are active while PortOne rotates them. */
  PORTONE_WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 1 })),
  /**
   * How long manual confirmation waits for PortOne's answer to `POST /payments/{id}/confirm` (ms).
   * No answer in time keeps the hold: the expiry asks PortOne what happened.
   */
  PORTONE_V2_CONFIRM_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000 }),
  /**
   * The PortOne API an order's payments use when its creation does not say (`v1` | `v2`). Unset: `v2`
   * when only the V2 API is configured (PORTONE_V2_API_SECRET without PORTONE_IMP_KEY), else `v1`.
   */
  PORTONE_DEFAULT_API: Type.Optional(Type.Union([Type.Literal('v1'), Type.Literal('v2')])),
  /** Optional secret path token for the V1 webhook URL (`/portone/v1/webhook?token=`). */
  WEBHOOK_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  /** Optional comma-separated source-IP allowlist for webhooks (off when unset). */
  WEBHOOK_ALLOWED_IPS: Type.Optional(Type.String({ minLength: 1 })),
  /** Optional comma-separated source-IP allowlist for the confirm call (off when unset). */
  CONFIRM_ALLOWED_IPS: Type.Optional(Type.String({ minLength: 1 })),
  /**
   * fastify `trustProxy`: `false`, a hop count, or comma-separated addresses/CIDRs of the proxies.
   * `true` is refused: it trusts the leftmost X-Forwarded-For entry, which any client can write.
   */
  TRUST_PROXY: Type.String(),
  /** Most payments (imp_uids) one order may see: remembered confirm answers, payments on one hold, webhooks numbered. */
  PAYMENTS_PER_ORDER_MAX: Type.Integer({ minimum: 1, maximum: 100 }),
  /** Most holds one order may take in its life (a hold per payment attempt after the previous one ended). */
  HOLDS_PER_ORDER_MAX: Type.Integer({ minimum: 1, maximum: 100 }),
  /**
   * Most orders one signed buyer may make for one event (orders refused at selection do not count; 0:
   * no limit). Applies only with BUYER_TOKEN_SECRET: without it a buyer id is the caller's word, and
   * anyone could spend another buyer's orders and lock them out of the sale.
   */
  ORDERS_PER_BUYER_MAX: Type.Integer({ minimum: 0, maximum: 100_000 }),
  /**
   * Signed buyer identity: secret(s), comma-separated for rotation, at least 32 characters each. When
   * set, an order, a queue place and a waiting-list entry need a `buyer_token` the storefront signed
   * for the buyer (see @dropgate/domain's buyer-token.ts and the README).
   */
  BUYER_TOKEN_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  /**
   * Most orders, and most queue joins and waiting-list joins (each endpoint its own budget), one client
   * address may send a minute, per API process (0: no limit). For sales without BUYER_TOKEN_SECRET; many buyers can share one
   * address (mobile carriers' NAT), so set it generously, or bound buyers with signed identity instead.
   */
  ORDERS_PER_IP_PER_MINUTE: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
  /**
   * PortOne lookups webhooks may start at once for one payment (and for an order's payments past
   * PAYMENTS_PER_ORDER_MAX); more webhooks share a lookup put off until the pace allows, never dropped.
   */
  WEBHOOK_LOOKUPS_PER_PAYMENT: Type.Integer({ minimum: 1, maximum: 100 }),
  /**
   * The window those lookups refill over (one every window / lookups), and how long a payment PortOne
   * said it does not know waits for its next lookup (s): the longest a webhook's lookup is put off.
   */
  WEBHOOK_LOOKUP_WINDOW_SECONDS: Type.Integer({ minimum: 1, maximum: 3_600 }),
  SIM_PORT: Port,
  WORKER_METRICS_PORT: Port,
  /**
   * When set, API process i (of API_PROCESSES) also serves /metrics and /healthz on this + i: processes
   * that share PORT cannot be scraped one by one through it (0: off).
   */
  API_METRICS_PORT: Port,
  /** Confirms in flight above which new ones are shed with 503 OVERLOADED. */
  CONFIRM_MAX_IN_FLIGHT: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  /** Event-loop delay (ms) above which requests are shed with 503 OVERLOADED. */
  MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 10, maximum: 60_000 }),
  /** How long (ms) an API process reuses an event's availability and seat pages it read (0: never). */
  READ_CACHE_MS: Type.Integer({ minimum: 0, maximum: 5_000 }),
  /**
   * Most entries one event's waiting list keeps (every buyer who joined, waiting or done): anyone can
   * join under any buyer id, so this bounds what they can make Redis store. A new buyer beyond it is
   * refused 409 WAITLIST_FULL.
   */
  WAITLIST_MAX_ENTRIES: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  /** How often the worker sweeps for overdue holds, in ms. */
  SWEEP_INTERVAL_MS: Type.Integer({ minimum: 100, maximum: 600_000 }),
  /**
   * How often (ms) one worker reads PortOne's lists of paid (and cancelled) payments against the record, to settle
   * payments no webhook told dropgate about (0: never). See the worker's ledger sweep.
   */
  LEDGER_SWEEP_INTERVAL_MS: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
  /** A payment paid this recently (ms) is left to its webhook by the ledger sweep. */
  LEDGER_SETTLE_DELAY_MS: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
  /** How long after a hold's expiry the worker keeps asking an unreachable PortOne before releasing. */
  EXPIRY_GRACE_SECONDS: Type.Integer({ minimum: 0, maximum: 86_400 }),
  /**
   * CPU niceness the worker gives itself (0 to 19). Persistence is write-behind: on a machine it
   * shares with the API, the worker should yield the CPU to confirms during a rush.
   */
  WORKER_NICE: Type.Integer({ minimum: 0, maximum: 19 }),
  /** After SIGINT/SIGTERM, how long a process may take to close before it exits anyway (ms). */
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000 }),
  /**
   * After a hold expires unpaid, how long its payments are still watched for a late "paid" whose
   * webhook may be lost (checked at 1/16, 1/8, 1/4, 1/2 and all of this window).
   */
  LATE_PAYMENT_WATCH_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400 }),
  /**
   * Most holds per second one worker records in Postgres (0 = no limit). Recording is write-behind:
   * during a rush it may lag a little, and the confirms keep the CPU and Redis.
   */
  HOLDS_PER_SECOND: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
  /**
   * The API's deadline for receiving a whole request, headers and body (ms): a client that trickles
   * its request (slow loris) is answered 408 and disconnected after this long.
   */
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 500, maximum: 600_000 }),
  /** The API closes a connection on which nothing moves for this long while a request is handled (ms). */
  CONNECTION_TIMEOUT_MS: Type.Integer({ minimum: 1_000, maximum: 3_600_000 }),
  MAX_CONNECTIONS: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
  /** Worker concurrency per queue. */
  WORKER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1000 }),
  /** BullMQ key prefix; hash-tagged so each queue stays in one Redis Cluster slot. */
  QUEUE_PREFIX: Type.String({ pattern: '^\\{[A-Za-z0-9_-]{1,40}\\}$' }),
  /** How long a worker's job lock lasts (ms): a job whose worker died runs again after about this long. */
  JOB_LOCK_MS: Type.Integer({ minimum: 500, maximum: 600_000 }),
  /**
   * How long a worker waits for an order another settlement of it holds (ms) before it gives up and
   * tries again later (a job retries with backoff; the relay's recording queues itself as a job).
   */
  ORDER_LOCK_WAIT_MS: Type.Integer({ minimum: 0, maximum: 600_000 }),
  LOG_LEVEL: Type.Union([
    Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'),
    Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent'),
  ]),
});

type Raw = Static<typeof ConfigSchema>;

/** Defaults, as the environment would spell them: only variables the schema knows can have one. */
export const DEFAULTS: Readonly<Partial<Record<keyof Raw, string>>> = Object.freeze({
  PORT: '3000',
  HOST: '127.0.0.1',
  DATABASE_URL: 'postgres://127.0.0.1:5432/dropgate',
  REDIS_URL: 'redis://127.0.0.1:6379',
  API_PROCESSES: '1',
  WORKER_PROCESSES: '1',
  CONFIRM_BUDGET_MS: '3000',
  PORTONE_API_URL: 'https://api.iamport.kr',
  PORTONE_V2_API_URL: 'https://api.portone.io',
  PORTONE_V2_CONFIRM_TIMEOUT_MS: '8000',
  TRUST_PROXY: 'false',
  PAYMENTS_PER_ORDER_MAX: '8',
  HOLDS_PER_ORDER_MAX: '8',
  ORDERS_PER_BUYER_MAX: '20',
  ORDERS_PER_IP_PER_MINUTE: '0',
  WEBHOOK_LOOKUPS_PER_PAYMENT: '4',
  WEBHOOK_LOOKUP_WINDOW_SECONDS: '60',
  SIM_PORT: '3100',
  WORKER_METRICS_PORT: '3001',
  API_METRICS_PORT: '0',
  CONFIRM_MAX_IN_FLIGHT: '10000',
  MAX_EVENT_LOOP_DELAY_MS: '1000',
  READ_CACHE_MS: '200',
  WAITLIST_MAX_ENTRIES: '50000',
  SWEEP_INTERVAL_MS: '5000',
  LEDGER_SWEEP_INTERVAL_MS: '60000',
  LEDGER_SETTLE_DELAY_MS: '60000',
  EXPIRY_GRACE_SECONDS: '600',
  WORKER_CONCURRENCY: '32',
  WORKER_NICE: '10',
  SHUTDOWN_TIMEOUT_MS: '15000',
  LATE_PAYMENT_WATCH_SECONDS: '1800',
  HOLDS_PER_SECOND: '0',
  REQUEST_TIMEOUT_MS: '10000',
  CONNECTION_TIMEOUT_MS: '60000',
  MAX_CONNECTIONS: '0',
  QUEUE_PREFIX: '{dropgate}',
  JOB_LOCK_MS: '30000',
  ORDER_LOCK_WAIT_MS: '2000',
  LOG_LEVEL: 'info',
});

/** Variables the schema declares as integers: read from their string form before validation. */
const INTEGER_KEYS: ReadonlySet<string> = new Set(
  Object.entries(ConfigSchema.properties).filter(([, schema]) => (schema as { type?: unknown }).type === 'integer').map(([key]) => key),
);

/** Which PortOne API an order's payments go through. */
export type PortOneApi = 'v1' | 'v2';

/** The validated, typed configuration every service receives. */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** REDIS_CLUSTER_NODES split (`host:port` each); undefined for a single Redis at `redisUrl`. */
  readonly redisClusterNodes: readonly string[] | undefined;
  /** API_PROCESSES: API processes `npm start` runs. */
  readonly apiProcesses: number;
  /** WORKER_PROCESSES: worker processes `npm start` runs. */
  readonly workerProcesses: number;
  readonly adminToken: string | undefined;
  /** METRICS_TOKEN: when set, /metrics (API and worker) answers only `Authorization: Bearer <it>`. */
  readonly metricsToken: string | undefined;
  readonly confirmBudgetMs: number;
  readonly portone: {
    readonly apiUrl: string;
    readonly impKey: string | undefined;
    readonly impSecret: string | undefined;
    readonly v2ApiUrl: string;
    readonly v2ApiSecret: string | undefined;
    readonly v2StoreId: string | undefined;
    /** PORTONE_V2_CONFIRM_TIMEOUT_MS: manual confirmation's wait for PortOne. */
    readonly v2ConfirmTimeoutMs: number;
    /** PORTONE_WEBHOOK_SECRET as given. */
    readonly webhookSecret: string | undefined;
    /** PORTONE_WEBHOOK_SECRET split: every secret a V2 signature may be made with (empty: V2 endpoints answer 401). */
    readonly webhookSecrets: readonly string[];
    /** The API an order's payments use when its creation does not say. */
    readonly defaultApi: PortOneApi;
    /**
     * V2 credentials and no PORTONE_IMP_KEY: no V1 payment can be asked about, so V1 orders, confirms
     * and webhooks are refused (attack round 26A).
     */
    readonly v2Only: boolean;
  };
  readonly webhookToken: string | undefined;
  readonly webhookAllowedIps: readonly string[] | undefined;
  readonly confirmAllowedIps: readonly string[] | undefined;
  /** What one order may make dropgate store and call (see HoldStore). */
  readonly orderLimits: {
    readonly maxPaymentsPerOrder: number;
    readonly maxHoldsPerOrder: number;
    /** ORDERS_PER_BUYER_MAX when buyers are signed (BUYER_TOKEN_SECRET), else 0: no limit. */
    readonly maxOrdersPerBuyer: number;
    /** WEBHOOK_LOOKUPS_PER_PAYMENT */
    readonly webhookLookupsPerPayment: number;
    /** WEBHOOK_LOOKUP_WINDOW_SECONDS */
    readonly webhookLookupWindowSeconds: number;
  };
  /** BUYER_TOKEN_SECRET split: the secrets a buyer token may be signed with (empty: buyer ids are not checked). */
  readonly buyerTokenSecrets: readonly string[];
  /** ORDERS_PER_IP_PER_MINUTE: orders (and joins, each endpoint apart) one client address may send a minute, per process (0: no limit). */
  readonly ordersPerIpPerMinute: number;
  readonly trustProxy: boolean | number | string[];
  readonly simPort: number;
  readonly workerMetricsPort: number;
  /** API_METRICS_PORT: API process i also serves /metrics and /healthz on this + i (0: off). */
  readonly apiMetricsPort: number;
  readonly confirmMaxInFlight: number;
  readonly maxEventLoopDelayMs: number;
  /** How long an API process reuses what GET /events/:id and its seat pages read (0: never). */
  readonly readCacheMs: number;
  /** WAITLIST_MAX_ENTRIES: most entries one event's waiting list keeps. */
  readonly waitlistMaxEntries: number;
  readonly sweepIntervalMs: number;
  /** LEDGER_SWEEP_INTERVAL_MS (0: no ledger sweep). */
  readonly ledgerSweepIntervalMs: number;
  /** LEDGER_SETTLE_DELAY_MS. */
  readonly ledgerSettleDelayMs: number;
  readonly expiryGraceSeconds: number;
  readonly workerConcurrency: number;
  readonly workerNice: number;
  readonly shutdownTimeoutMs: number;
  readonly latePaymentWatchSeconds: number;
  readonly holdsPerSecond: number;
  /** REQUEST_TIMEOUT_MS: the whole request (headers and body) must arrive within this. */
  readonly requestTimeoutMs: number;
  /** CONNECTION_TIMEOUT_MS: a connection idle this long while a request is handled is closed. */
  readonly connectionTimeoutMs: number;
  /** MAX_CONNECTIONS: open client connections an API process keeps at most (0: four fifths of its open-files limit). */
  readonly maxConnections: number;
  readonly queuePrefix: string;
  readonly jobLockMs: number;
  readonly orderLockWaitMs: number;
  readonly logLevel: Raw['LOG_LEVEL'];
}

/** Thrown when a variable is invalid; its message names the variable and what is wrong. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

/**
 * Standard Webhooks secrets: `whsec_` followed by base64 (the prefix is optional), comma-separated.
 * A secret that is not base64 could never verify a signature: refused at start-up, not at the first webhook.
 */
function parseWebhookSecrets(value: string | undefined): readonly string[] {
  if (value === undefined) return Object.freeze([]);
  const secrets = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const secret of secrets) {
    const body = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) {
      throw new ConfigError('PORTONE_WEBHOOK_SECRET', 'must be comma-separated secrets, each "whsec_" and base64');
    }
  }
  if (secrets.length === 0) throw new ConfigError('PORTONE_WEBHOOK_SECRET', 'names no secret');
  return Object.freeze(secrets);
}

/** BUYER_TOKEN_SECRET: comma-separated, each long enough that it cannot be guessed (32 characters or more). */
function parseBuyerTokenSecrets(value: string | undefined): readonly string[] {
  if (value === undefined) return Object.freeze([]);
  const secrets = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (secrets.length === 0 || secrets.some((s) => s.length < 32)) {
    throw new ConfigError('BUYER_TOKEN_SECRET', 'must be comma-separated secrets of at least 32 characters each');
  }
  return Object.freeze(secrets);
}

function parseTrustProxy(value: string): boolean | number | string[] {
  if (value === 'false' || value === '') return false;
  if (value === 'true') {
    throw new ConfigError('TRUST_PROXY', 'must not be true: that trusts the leftmost X-Forwarded-For entry, which any client can write; set the number of proxies in front of dropgate (e.g. 1) or their addresses');
  }
  if (/^\d+$/.test(value)) return Number(value);
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * Reads the configuration from `env` (normally `process.env`), applying defaults and overrides.
 * @throws ConfigError naming the first invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Record<string, string> = {}): Config {
  const input: Record<string, unknown> = {};
  const keys = Object.keys(ConfigSchema.properties) as (keyof Raw)[];
  for (const key of keys) {
    const value = overrides[key] ?? env[key] ?? DEFAULTS[key];
    if (value === undefined || value === '') continue;
    if (INTEGER_KEYS.has(key)) {
      if (!/^-?\d+$/.test(value.trim())) throw new ConfigError(key, `must be an integer, got ${JSON.stringify(value)}`);
      input[key] = Number(value.trim());
    } else {
      input[key] = value;
    }
  }
  const first = Schema.Errors(ConfigSchema, input)[1][0];
  if (first) {
    const variable = first.instancePath.replace(/^\//, '') || String((first.params as { requiredProperties?: string[] }).requiredProperties?.[0] ?? 'configuration');
    throw new ConfigError(variable, first.message);
  }
  const raw = input as Raw;
  if (raw.CONNECTION_TIMEOUT_MS < raw.REQUEST_TIMEOUT_MS) {
    throw new ConfigError('CONNECTION_TIMEOUT_MS', `must be at least REQUEST_TIMEOUT_MS (${raw.REQUEST_TIMEOUT_MS})`);
  }
  if ((raw.PORTONE_IMP_KEY === undefined) !== (raw.PORTONE_IMP_SECRET === undefined)) {
    throw new ConfigError(raw.PORTONE_IMP_KEY === undefined ? 'PORTONE_IMP_KEY' : 'PORTONE_IMP_SECRET', 'must be set together with its pair');
  }
  const webhookSecrets = parseWebhookSecrets(raw.PORTONE_WEBHOOK_SECRET);
  const v2Only = raw.PORTONE_V2_API_SECRET !== undefined && raw.PORTONE_IMP_KEY === undefined;
  const buyerTokenSecrets = parseBuyerTokenSecrets(raw.BUYER_TOKEN_SECRET);
  // A V2 payment dropgate approved must be verifiable and settleable: never approve what it cannot ask about.
  if (webhookSecrets.length > 0 && raw.PORTONE_V2_API_SECRET === undefined) {
    throw new ConfigError('PORTONE_V2_API_SECRET', 'must be set with PORTONE_WEBHOOK_SECRET: dropgate asks V2 REST about every V2 payment it approves');
  }
  // The scraper's configuration holds the metrics token: it must not open the admin API too.
  if (raw.METRICS_TOKEN !== undefined && raw.METRICS_TOKEN === raw.ADMIN_TOKEN) {
    throw new ConfigError('METRICS_TOKEN', 'must differ from ADMIN_TOKEN: whoever scrapes the metrics would hold the admin API too');
  }
  return Object.freeze({
    port: raw.PORT,
    host: raw.HOST,
    databaseUrl: raw.DATABASE_URL,
    redisUrl: raw.REDIS_URL,
    redisClusterNodes: raw.REDIS_CLUSTER_NODES === undefined ? undefined : Object.freeze(raw.REDIS_CLUSTER_NODES.split(',').map((s) => s.trim()).filter(Boolean)),
    apiProcesses: raw.API_PROCESSES,
    workerProcesses: raw.WORKER_PROCESSES,
    adminToken: raw.ADMIN_TOKEN,
    metricsToken: raw.METRICS_TOKEN,
    confirmBudgetMs: raw.CONFIRM_BUDGET_MS,
    portone: Object.freeze({
      apiUrl: raw.PORTONE_API_URL.replace(/\/+$/, ''),
      impKey: raw.PORTONE_IMP_KEY,
      impSecret: raw.PORTONE_IMP_SECRET,
      v2ApiUrl: raw.PORTONE_V2_API_URL.replace(/\/+$/, ''),
      v2ApiSecret: raw.PORTONE_V2_API_SECRET,
      v2StoreId: raw.PORTONE_V2_STORE_ID,
      v2ConfirmTimeoutMs: raw.PORTONE_V2_CONFIRM_TIMEOUT_MS,
      webhookSecret: raw.PORTONE_WEBHOOK_SECRET,
      webhookSecrets,
      defaultApi: raw.PORTONE_DEFAULT_API ?? (v2Only ? 'v2' : 'v1'),
      v2Only,
    }),
    webhookToken: raw.WEBHOOK_TOKEN,
    webhookAllowedIps: raw.WEBHOOK_ALLOWED_IPS?.split(',').map((s) => s.trim()).filter(Boolean),
    confirmAllowedIps: raw.CONFIRM_ALLOWED_IPS?.split(',').map((s) => s.trim()).filter(Boolean),
    orderLimits: Object.freeze({
      maxPaymentsPerOrder: raw.PAYMENTS_PER_ORDER_MAX,
      maxHoldsPerOrder: raw.HOLDS_PER_ORDER_MAX,
      webhookLookupsPerPayment: raw.WEBHOOK_LOOKUPS_PER_PAYMENT,
      webhookLookupWindowSeconds: raw.WEBHOOK_LOOKUP_WINDOW_SECONDS,
      maxOrdersPerBuyer: buyerTokenSecrets.length > 0 ? raw.ORDERS_PER_BUYER_MAX : 0,
    }),
    buyerTokenSecrets,
    ordersPerIpPerMinute: raw.ORDERS_PER_IP_PER_MINUTE,
    trustProxy: parseTrustProxy(raw.TRUST_PROXY),
    simPort: raw.SIM_PORT,
    workerMetricsPort: raw.WORKER_METRICS_PORT,
    apiMetricsPort: raw.API_METRICS_PORT,
    confirmMaxInFlight: raw.CONFIRM_MAX_IN_FLIGHT,
    maxEventLoopDelayMs: raw.MAX_EVENT_LOOP_DELAY_MS,
    readCacheMs: raw.READ_CACHE_MS,
    waitlistMaxEntries: raw.WAITLIST_MAX_ENTRIES,
    sweepIntervalMs: raw.SWEEP_INTERVAL_MS,
    ledgerSweepIntervalMs: raw.LEDGER_SWEEP_INTERVAL_MS,
    ledgerSettleDelayMs: raw.LEDGER_SETTLE_DELAY_MS,
    expiryGraceSeconds: raw.EXPIRY_GRACE_SECONDS,
    workerConcurrency: raw.WORKER_CONCURRENCY,
    workerNice: raw.WORKER_NICE,
    shutdownTimeoutMs: raw.SHUTDOWN_TIMEOUT_MS,
    latePaymentWatchSeconds: raw.LATE_PAYMENT_WATCH_SECONDS,
    holdsPerSecond: raw.HOLDS_PER_SECOND,
    requestTimeoutMs: raw.REQUEST_TIMEOUT_MS,
    connectionTimeoutMs: raw.CONNECTION_TIMEOUT_MS,
    maxConnections: raw.MAX_CONNECTIONS,
    queuePrefix: raw.QUEUE_PREFIX,
    jobLockMs: raw.JOB_LOCK_MS,
    orderLockWaitMs: raw.ORDER_LOCK_WAIT_MS,
    logLevel: raw.LOG_LEVEL,
  });
}

/**
 * For entry points: the configuration, or exit with status 2 after `report`ing which variable is
 * invalid (other errors propagate).
 */
export function loadConfigOrExit(report: (message: string) => void = (m) => console.error(m)): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      report(error.message);
      process.exit(2);
    }
    throw error;
  }
}

export { StartupError, closeOnSignals, compileCacheEnv, explainStartupFailure, exitOnStartupFailure, assertRedisReachable, assertPortFree, redactUrl, type StartupSettings } from './startup.ts';
