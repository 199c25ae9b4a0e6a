import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig, ConfigError } from '@dropgate/config';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000, host: '127.0.0.1', databaseUrl: 'postgres://127.0.0.1:5432/dropgate', redisUrl: 'redis://127.0.0.1:6379',
      adminToken: undefined, confirmBudgetMs: 3000, simPort: 3100, portone: { apiUrl: 'https://api.iamport.kr' },
      waitlistMaxEntries: 50_000,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    ['PORT', 'abc'], ['PORT', '70000'], ['CONFIRM_BUDGET_MS', '5000'], ['CONFIRM_BUDGET_MS', '10'], ['REDIS_URL', 'localhost:6379'],
    ['DATABASE_URL', 'mysql://x'], ['ADMIN_TOKEN', 'short'], ['ADMIN_TOKEN', 'with a space in it, long enough'], ['METRICS_TOKEN', 'sixteen-chars-but-\u00e9'], ['LOG_LEVEL', 'loud'], ['SIM_PORT', '-1'], ['PORTONE_API_URL', 'ftp://x'],
    ['REQUEST_TIMEOUT_MS', '0'], ['REQUEST_TIMEOUT_MS', '5s'], ['CONNECTION_TIMEOUT_MS', '100'],
    ['WAITLIST_MAX_ENTRIES', '0'], ['WAITLIST_MAX_ENTRIES', 'many'],
  ])('stops on an invalid %s (%s) and names the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    try {
      loadConfig({ [name]: value });
    } catch (error) {
      expect((error as ConfigError).variable).toBe(name);
      expect((error as Error).message).toContain(name);
    }
  });

  it('refuses a METRICS_TOKEN equal to ADMIN_TOKEN, naming METRICS_TOKEN', () => {
    const token = randomBytes(16).toString('hex');
    expect(() => loadConfig({ ADMIN_TOKEN: token, METRICS_TOKEN: token })).toThrow(expect.objectContaining({ variable: 'METRICS_TOKEN' }));
    expect(loadConfig({ ADMIN_TOKEN: token, METRICS_TOKEN: `${token}x` }).metricsToken).toBe(`${token}x`);
  });

  it('reads PortOne V2: webhook secrets for rotation (each checked), the store, the default API', () => {
    const a = `whsec_${randomBytes(24).toString('base64')}`;
    const b = `whsec_${randomBytes(24).toString('base64')}`;
    const c = loadConfig({ PORTONE_WEBHOOK_SECRET: ` ${a}, ${b} `, PORTONE_V2_API_SECRET: 's', PORTONE_V2_STORE_ID: 'store-1' });
    expect(c.portone).toMatchObject({ webhookSecrets: [a, b], v2StoreId: 'store-1', v2ConfirmTimeoutMs: 8000, defaultApi: 'v2' });
    expect(loadConfig({}).portone).toMatchObject({ webhookSecrets: [], defaultApi: 'v1' });
    expect(loadConfig({ PORTONE_V2_API_SECRET: 's', PORTONE_IMP_KEY: 'k', PORTONE_IMP_SECRET: 'x' }).portone.defaultApi).toBe('v1');
    expect(loadConfig({ PORTONE_DEFAULT_API: 'v2' }).portone.defaultApi).toBe('v2');
    for (const [env, variable] of [
      [{ PORTONE_WEBHOOK_SECRET: 'whsec_not base64!', PORTONE_V2_API_SECRET: 's' }, 'PORTONE_WEBHOOK_SECRET'],
      [{ PORTONE_WEBHOOK_SECRET: ' , ', PORTONE_V2_API_SECRET: 's' }, 'PORTONE_WEBHOOK_SECRET'],
      // Approving V2 payments dropgate could not then ask PortOne about is refused at start-up.
      [{ PORTONE_WEBHOOK_SECRET: a }, 'PORTONE_V2_API_SECRET'],
      [{ PORTONE_DEFAULT_API: 'v3' }, 'PORTONE_DEFAULT_API'],
      [{ PORTONE_V2_STORE_ID: 'store 1' }, 'PORTONE_V2_STORE_ID'],
    ] as const) {
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(ConfigError);
      try {
        loadConfig(env);
      } catch (error) {
        expect((error as ConfigError).variable).toBe(variable);
      }
    }
  });

  it('bounds request time by default, and keeps the connection timeout above it', () => {
    expect(loadConfig({})).toMatchObject({ requestTimeoutMs: 10_000, connectionTimeoutMs: 60_000 });
    expect(() => loadConfig({ REQUEST_TIMEOUT_MS: '20000', CONNECTION_TIMEOUT_MS: '10000' })).toThrow(/CONNECTION_TIMEOUT_MS/);
  });

  it('refuses TRUST_PROXY=true, which would trust any X-Forwarded-For a client writes (issue 8, defect 11)', () => {
    expect(() => loadConfig({ TRUST_PROXY: 'true' })).toThrow(/TRUST_PROXY must not be true/);
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.1,10.0.0.2' }).trustProxy).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('bounds what one order may make dropgate store and call, and reads the confirm allowlist', () => {
    // Orders per buyer are bounded only for signed buyers: otherwise anyone could spend a buyer's orders.
    expect(loadConfig({}).orderLimits).toEqual({ maxPaymentsPerOrder: 8, maxHoldsPerOrder: 8, webhookLookupsPerPayment: 4, webhookLookupWindowSeconds: 60, maxOrdersPerBuyer: 0 });
    const signed = { BUYER_TOKEN_SECRET: 's'.repeat(32) };
    expect(loadConfig(signed).orderLimits.maxOrdersPerBuyer).toBe(20);
    expect(loadConfig({ ...signed, ORDERS_PER_BUYER_MAX: '3' }).orderLimits.maxOrdersPerBuyer).toBe(3);
    expect(loadConfig({ ...signed, ORDERS_PER_BUYER_MAX: '0' }).orderLimits.maxOrdersPerBuyer).toBe(0);
    expect(() => loadConfig({ ORDERS_PER_BUYER_MAX: '-1' })).toThrow(/ORDERS_PER_BUYER_MAX/);
    expect(loadConfig({}).ordersPerIpPerMinute).toBe(0);
    expect(loadConfig({ ORDERS_PER_IP_PER_MINUTE: '600' }).ordersPerIpPerMinute).toBe(600);
    expect(() => loadConfig({ ORDERS_PER_IP_PER_MINUTE: '-1' })).toThrow(/ORDERS_PER_IP_PER_MINUTE/);
    expect(() => loadConfig({ WEBHOOK_LOOKUPS_PER_PAYMENT: '0' })).toThrow(/WEBHOOK_LOOKUPS_PER_PAYMENT/);
    expect(() => loadConfig({ WEBHOOK_LOOKUP_WINDOW_SECONDS: '0' })).toThrow(/WEBHOOK_LOOKUP_WINDOW_SECONDS/);
    expect(loadConfig({ CONFIRM_ALLOWED_IPS: '1.2.3.4, 5.6.7.8' }).confirmAllowedIps).toEqual(['1.2.3.4', '5.6.7.8']);
    expect(() => loadConfig({ PAYMENTS_PER_ORDER_MAX: '0' })).toThrow(/PAYMENTS_PER_ORDER_MAX/);
  });

  it('reads buyer token secrets (comma-separated, for rotation), each long enough not to be guessed', () => {
    expect(loadConfig({}).buyerTokenSecrets).toEqual([]);
    const a = 'a'.repeat(32);
    const b = 'b'.repeat(40);
    expect(loadConfig({ BUYER_TOKEN_SECRET: `${a}, ${b}` }).buyerTokenSecrets).toEqual([a, b]);
    expect(() => loadConfig({ BUYER_TOKEN_SECRET: 'short' })).toThrow(/BUYER_TOKEN_SECRET/);
    expect(() => loadConfig({ BUYER_TOKEN_SECRET: `${a},short` })).toThrow(/BUYER_TOKEN_SECRET.*32 characters/);
    expect(() => loadConfig({ BUYER_TOKEN_SECRET: ' , , '.repeat(12) })).toThrow(/BUYER_TOKEN_SECRET/);
  });

  it('wants PortOne credentials in pairs', () => {
    expect(() => loadConfig({ PORTONE_IMP_KEY: 'k' })).toThrow(/PORTONE_IMP_SECRET/);
  });
});

describe('closeOnSignals', () => {
  const node = process.execPath;
  const run = (closeBody: string, timeoutMs: number) => spawnSync(node, ['--input-type=module', '-e', `
    import { closeOnSignals } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)};
    closeOnSignals('t', () => ${closeBody}, { timeoutMs: ${timeoutMs}, log: (m) => console.log(m) });
    setInterval(() => undefined, 1_000);
    process.kill(process.pid, 'SIGTERM');
    process.kill(process.pid, 'SIGINT');
  `], { encoding: 'utf8', timeout: 20_000 });

  it('exits 0 once a graceful close finishes, closing once despite two signals', () => {
    const r = run(`new Promise((r) => setTimeout(() => { console.log('closed'); r(); }, 200))`, 10_000);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.match(/closed/g)).toHaveLength(1);
  });

  it('exits 1 after the timeout when the close never finishes, saying so', () => {
    const started = Date.now();
    const r = run('new Promise(() => undefined)', 500);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/did not close within 500 ms \(SHUTDOWN_TIMEOUT_MS\)/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
