/**
 * METRICS_TOKEN: what /metrics shows (every event with its sales, holds and queues, the process's
 * memory and lag) is the operator's. With the token set, the API's /metrics (on the public port) and
 * the worker's answer only `Authorization: Bearer <METRICS_TOKEN>`; anything else is a 401
 * `{code, message}` that reads nothing. Without it (the default) both stay open, as Prometheus expects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, http } from '@dropgate/testkit';
import { startApi, type RunningApi } from '@dropgate/api';
import { startStack, type TestStack } from '@dropgate/stack';
import { startWorker, type RunningWorker } from '@dropgate/worker';

const TOKEN = 'metrics-token-0123456789abcdef';
let stack: TestStack;
let worker: RunningWorker;
beforeAll(async () => {
  stack = await startStack({ label: 'metricstoken', worker: false, env: { METRICS_TOKEN: TOKEN, WORKER_METRICS_PORT: String(await freePort()) } });
  worker = await startWorker(stack.config, { prefix: stack.prefix, metricsServer: true, timers: false });
});
afterAll(async () => {
  await worker?.close();
  await stack?.close();
});

describe('METRICS_TOKEN', () => {
  it('the API and the worker answer /metrics only with the token; 401 {code, message} otherwise', async () => {
    for (const url of [`${stack.url}/metrics`, worker.metricsUrl!]) {
      for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
        const res = await fetch(url, authorization ? { headers: { authorization } } : {});
        expect(res.status, `${url} ${authorization}`).toBe(401);
        const body = await res.json() as { code: string; message: string };
        expect(body).toEqual({ code: 'UNAUTHORIZED', message: expect.stringContaining('METRICS_TOKEN') });
      }
      const ok = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(ok.status, url).toBe(200);
      expect(await ok.text()).toMatch(/^# HELP /m);
      // The scheme is case-insensitive (RFC 9110).
      expect((await fetch(url, { headers: { authorization: `bearer ${TOKEN}` } })).status, url).toBe(200);
    }
    // Health and readiness stay open (load balancers probe them).
    expect((await http(stack.url, 'GET', '/healthz')).status).toBe(200);
    expect((await http(stack.url, 'GET', '/readyz')).status).toBe(200);
  });
});

describe('without METRICS_TOKEN', () => {
  it('the API answers /metrics to loopback and private addresses only (as TRUST_PROXY resolves the client), 403 {code, message} to others', async () => {
    // A second API process on the same stack, behind one trusted proxy and with no METRICS_TOKEN.
    const open: RunningApi = await startApi({ ...stack.config, port: 0, trustProxy: 1, metricsToken: undefined }, { logger: false, queuePrefix: stack.prefix });
    try {
      for (const from of [undefined, '10.1.2.3', '172.20.0.9', '192.168.1.1', '::1', 'fd00::5']) {
        const res = await fetch(`${open.url}/metrics`, from ? { headers: { 'x-forwarded-for': from } } : {});
        expect(res.status, String(from)).toBe(200);
      }
      for (const from of ['203.0.113.5', '8.8.8.8', '172.32.0.1', '2001:db8::1', '::ffff:203.0.113.5']) {
        const res = await fetch(`${open.url}/metrics`, { headers: { 'x-forwarded-for': from } });
        expect(res.status, from).toBe(403);
        expect(await res.json()).toEqual({ code: 'FORBIDDEN', message: expect.stringContaining('METRICS_TOKEN') });
      }
    } finally {
      await open.close();
    }
  });
});
