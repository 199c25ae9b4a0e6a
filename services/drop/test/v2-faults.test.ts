/**
 * Drops paid through PortOne V2 (`--portone v2`: the signed confirm webhook; `--portone v2-manual`:
 * manual confirmation), each with faults switched on, through the simulator's V2 mode. Every one must
 * end with the invariants holding (the checks `npm run drop` runs) and show its fault really happened.
 */
import { describe, it } from 'vitest';
import { brokenInvariants, stacksForFile } from './helpers.ts';

// Per-payment faults share a stack (one event each); REST faults are the simulator's global ones.
const stacks = stacksForFile({ shared: 'v2faults', rest: 'v2faults_rest' });

const small = { buyers: 60, seats: 24, pool: 12, concurrency: 20 };

describe.concurrent('V2 drops with faults keep every invariant', { timeout: 120_000 }, () => {
  it('--portone v2, every webhook lost: verification and expiry ask V2 REST and find every payment', async ({ expect }) => {
    const s = (await stacks.shared.drop({ ...small, portone: 'v2', webhookLoss: 1 })).summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.timing.settled).toBe(true);
    expect(s.webhooks.lost).toBeGreaterThan(0);
    expect(s.webhooks.attempts).toBe(0);
    expect(s.payments.paid).toBeGreaterThan(0);
    expect(s.orders['paid']).toBe(s.payments.paid);
  });

  it('--portone v2, webhooks duplicated and out of order, payments cancelled at PortOne, PG failed-then-paid', async ({ expect }) => {
    const s = (await stacks.shared.drop({ ...small, portone: 'v2', webhookDuplicates: 1, webhookReorder: 0.5, consoleCancel: 0.3, failedThenPaid: 0.3, failedThenPaidMs: 1_000, webhookLoss: 0.2 })).summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.webhooks.duplicates).toBeGreaterThan(0);
    expect(s.buyers.faults['webhook_reorder'] ?? 0).toBeGreaterThan(0);
    expect(s.payments.cancelled_at_portone).toBeGreaterThan(0);
    expect(s.payments.failed_then_paid).toBeGreaterThan(0);
  });

  it('--portone v2-manual with webhooks lost and duplicated, PG failed-then-paid, payments cancelled at PortOne', async ({ expect }) => {
    const s = (await stacks.shared.drop({ ...small, portone: 'v2-manual', webhookLoss: 0.5, webhookDuplicates: 0.5, failedThenPaid: 0.3, failedThenPaidMs: 1_000, consoleCancel: 0.2 })).summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.timing.settled).toBe(true);
    expect(s.webhooks.lost).toBeGreaterThan(0);
    expect(s.payments.failed_then_paid).toBeGreaterThan(0);
    expect(s.payments.cancelled_at_portone).toBeGreaterThan(0);
    expect(s.payments.paid).toBeGreaterThan(0);
  });

  it('--portone v2-manual with PortOne\'s REST API slow and failing a fifth of the time', async ({ expect }) => {
    const s = (await stacks.rest.drop({ ...small, portone: 'v2-manual', restLatencyMs: 50, restFailureRate: 0.2, webhookLoss: 0.3 })).summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.timing.pending).toEqual([]);
    expect(s.timing.settled).toBe(true);
    expect(s.payments.paid).toBeGreaterThan(0);
    expect(s.orders['paid']).toBe(s.payments.paid);
  });
});
