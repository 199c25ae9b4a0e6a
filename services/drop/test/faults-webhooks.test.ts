/**
 * Fault drops, part 1 of 3: webhooks lost, duplicated, delayed.
 *
 * End-to-end drops through the PortOne simulator, one per fault, each small enough to take seconds.
 * Every one must end with all four invariants holding (the same checks `npm run drop` runs), and must
 * show that its fault really happened, so a fault that silently stopped firing fails the test.
 */
import { describe, it } from 'vitest';
import { brokenInvariants, stacksForFile } from './helpers.ts';

// The webhook and PG faults are per payment: the drops of this file share one stack, each with its own
// event, as several events on one dropgate would (three files of fault drops: see stacksForFile).
const stacks = stacksForFile({ shared: 'faults_webhooks' });

describe.concurrent('a drop with a fault switched on keeps every invariant', { timeout: 120_000 }, () => {
  it('every webhook lost: the expiry check still finds every payment', async ({ expect }) => {
    const result = await stacks.shared.drop({ webhookLoss: 1 });
    const s = result.summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.timing.pending).toEqual([]);
    expect(s.timing.settled).toBe(true);
    expect(s.webhooks.lost).toBeGreaterThan(0);
    expect(s.webhooks.attempts).toBe(0);
    // Nothing told dropgate about these sales but PortOne's REST API, asked when the holds expired.
    expect(s.payments.paid).toBeGreaterThan(0);
    expect(s.orders['paid']).toBe(s.payments.paid);
  });

  it('every webhook duplicated: no effect beyond the first', async ({ expect }) => {
    const result = await stacks.shared.drop({ webhookDuplicates: 1, webhookLoss: 0 });
    const s = result.summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.webhooks.duplicates).toBeGreaterThan(0);
    expect(s.webhooks.duplicates).toBe(s.payments.paid);
    expect(s.refunds.count).toBe(0);
  });

  it('webhooks delayed by up to 2 s', async ({ expect }) => {
    const result = await stacks.shared.drop({ webhookDelayMs: 2_000 });
    const s = result.summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.buyers.faults['webhook_delay_ms'] ?? 0).toBeGreaterThan(0);
    expect(s.payments.paid).toBeGreaterThan(0);
  });
});
