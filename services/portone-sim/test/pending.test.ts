/**
 * `pending(prefix)` / `GET /sim/pending`: background work of one order's (or one event's) payments,
 * so a caller sharing the simulator with others can wait for its own webhooks, delayed outcomes and
 * held-back webhooks without waiting for everyone's.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/index.ts';
import { startEndpoint, type Endpoint } from './helpers.ts';

let sim: Simulator;
let merchant: Endpoint;

beforeAll(async () => {
  sim = await startSimulator();
  merchant = await startEndpoint();
});
afterAll(async () => {
  await sim?.close();
  await merchant?.close();
});

describe('pending work per merchant_uid prefix', () => {
  it('counts a delayed webhook, a failed-then-paid outcome and a held-back webhook for their own event only', async () => {
    await sim.pay({ merchant_uid: 'ev-a.00000000001', amount: 1000, notice_url: merchant.url, faults: { webhook_delay_ms: 400 } });
    await sim.pay({ merchant_uid: 'ev-a.00000000002', amount: 1000, notice_url: merchant.url, faults: { failed_then_paid_ms: 300 } });
    await sim.pay({ merchant_uid: 'ev-b.00000000003', amount: 1000, notice_url: merchant.url, faults: { webhook_reorder: true, webhook_reorder_max_hold_ms: 300 } });
    expect(sim.pending('ev-a.')).toBe(2);
    expect(sim.pending('ev-b.')).toBe(1);
    expect(sim.pending('ev-c.')).toBe(0);
    expect(sim.pending()).toBe(3);
    const res = await fetch(`${sim.url}/sim/pending?merchant_uid_prefix=ev-b.`);
    expect(await res.json()).toEqual({ pending: 1 });

    await merchant.waitFor(3, 5_000);
    await sim.settled();
    expect(sim.pending('ev-a.')).toBe(0);
    expect(sim.pending('ev-b.')).toBe(0);
    expect(sim.pending()).toBe(0);
  });
});

describe('closing stops the work in flight', () => {
  it('ends webhooks delayed for a minute and a confirm call to a merchant that never answers without waiting them out; no webhook reaches the merchant', async () => {
    const other = await startSimulator();
    // A merchant that takes the connection and never answers.
    const sockets: Socket[] = [];
    const silent = createServer((s) => { sockets.push(s); });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/confirm`;
    let closed = false;
    try {
      const before = merchant.requests.length;
      for (let i = 0; i < 20; i++) {
        await other.pay({ merchant_uid: `ev-r.000000000${String(i).padStart(2, '0')}`, amount: 1000, notice_url: merchant.url, faults: { webhook_delay_ms: 60_000 } });
      }
      const hanging = other.pay({ merchant_uid: 'ev-r.00000000099', amount: 1000, confirm_url: silentUrl, faults: { confirm_timeout_ms: 60_000 } });
      await expect.poll(() => sockets.length, { timeout: 5_000 }).toBe(1);
      expect(other.pending()).toBe(20);
      await other.close();
      closed = true;
      // Within the test's timeout, far below the minute either would take: the confirm call is given
      // up and the delayed webhooks are dropped.
      await hanging.catch(() => undefined);
      await other.settled();
      expect(other.pending()).toBe(0);
      expect(merchant.requests.length).toBe(before);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
      if (!closed) await other.close();
    }
  });
});
