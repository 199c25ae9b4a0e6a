import { describe, expect, it } from 'vitest';
import { loadConfig, ConfigError } from '@dropgate/config';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000, host: '127.0.0.1', databaseUrl: 'postgres://127.0.0.1:5432/dropgate', redisUrl: 'redis://127.0.0.1:6379',
      adminToken: undefined, confirmBudgetMs: 3000, simPort: 3100, portone: { apiUrl: 'https://api.iamport.kr' },
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    ['PORT', 'abc'], ['PORT', '70000'], ['CONFIRM_BUDGET_MS', '5000'], ['CONFIRM_BUDGET_MS', '10'], ['REDIS_URL', 'localhost:6379'],
    ['DATABASE_URL', 'mysql://x'], ['ADMIN_TOKEN', 'short'], ['LOG_LEVEL', 'loud'], ['SIM_PORT', '-1'], ['PORTONE_API_URL', 'ftp://x'],
    ['REQUEST_TIMEOUT_MS', '0'], ['REQUEST_TIMEOUT_MS', '5s'], ['CONNECTION_TIMEOUT_MS', '100'],
  ])('stops on an invalid %s (%s) and names the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    try {
      loadConfig({ [name]: value });
    } catch (error) {
      expect((error as ConfigError).variable).toBe(name);
      expect((error as Error).message).toContain(name);
    }
  });

  it('bounds request time by default, and keeps the connection timeout above it', () => {
    expect(loadConfig({})).toMatchObject({ requestTimeoutMs: 10_000, connectionTimeoutMs: 60_000 });
    expect(() => loadConfig({ REQUEST_TIMEOUT_MS: '20000', CONNECTION_TIMEOUT_MS: '10000' })).toThrow(/CONNECTION_TIMEOUT_MS/);
  });

  it('wants PortOne credentials in pairs', () => {
    expect(() => loadConfig({ PORTONE_IMP_KEY: 'k' })).toThrow(/PORTONE_IMP_SECRET/);
  });
});
