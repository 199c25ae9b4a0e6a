/**
 * API_METRICS_PORT: an API process's /metrics and /healthz on a port of its own, for processes that
 * share PORT. Attacked (round 14), it had none of the public port's guards: about 27,000 idle
 * connections used up the process's open files and ended it, and it believed `X-Forwarded-For` from
 * direct clients with TRUST_PROXY set. It keeps at most METRICS_PORT_MAX_CONNECTIONS connections
 * (idle ones make room for a scrape), and the address check sees the connection's own address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, openIdleConnections, waitFor } from '@dropgate/testkit';
import { METRICS_PORT_MAX_CONNECTIONS } from '../src/server.ts';
import { startApiStack, type ApiStack } from './support/api-stack.ts';

let stack: ApiStack;
let port: number;
beforeAll(async () => {
  port = await freePort();
  stack = await startApiStack({ label: 'metricsport', env: { API_METRICS_PORT: String(port), TRUST_PROXY: '1' } });
});
afterAll(async () => { await stack?.close(); });

describe('the API process\'s own metrics port', () => {
  it('decides by the connection\'s address: a client\'s X-Forwarded-For is not believed there (it is on the public port, behind TRUST_PROXY)', async () => {
    expect(stack.api.metricsUrl).toBe(`http://127.0.0.1:${port}/metrics`);
    const claimed = { 'x-forwarded-for': '8.8.8.8' };
    // The public port trusts one proxy: the claimed public address is refused there.
    expect((await fetch(`${stack.url}/metrics`, { headers: claimed })).status).toBe(403);
    // The metrics port is scraped directly: loopback asks, whatever the header says.
    const res = await fetch(stack.api.metricsUrl!, { headers: claimed });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('dropgate_confirm_duration_seconds');
  });

  it(`keeps at most ${METRICS_PORT_MAX_CONNECTIONS} connections, and idle ones make room for a scrape`, async () => {
    const idle = await openIdleConnections(port, METRICS_PORT_MAX_CONNECTIONS + 20);
    try {
      // Those beyond the bound are closed as they come; the refusals close the idle ones too.
      await waitFor(async () => idle.closed() >= 20, 5_000, 'the connections beyond the bound closed');
      const scraped = await waitFor(async () => {
        const r = await fetch(stack.api.metricsUrl!).catch(() => null);
        return r?.status === 200 ? r : null;
      }, 10_000, 'a scrape served');
      expect(await scraped.text()).toContain('dropgate_');
    } finally {
      idle.destroy();
    }
  });
});
