/**
 * Fault drops, part 2 of 3: webhooks out of order or early, and payments failed then paid.
 *
 * End-to-end drops through the PortOne simulator, one per fault, each small enough to take seconds.
 * Every one must end with all four invariants holding (the same checks `npm run drop` runs), and must
 * show that its fault really happened, so a fault that silently stopped firing fails the test.
 */
import { describe, it } from 'vitest';
import { brokenInvariants, stacksForFile } from './helpers.ts';

// The webhook and PG faults are per payment: the drops of this file share one stack, each with its own
// event, as several events on one dropgate would (three files of fault drops: see stacksForFile).
const stacks = stacksForFile({ shared: 'faults_ordering' });

describe.concurrent('a drop with a fault switched on keeps every invariant', { timeout: 120_000 }, () => {
  it('webhooks out of order (paid arrives after cancelled, for payments cancelled at PortOne)', async ({ expect }) => {
    const result = await stacks.shared.drop({ webhookReorder: 1, consoleCancel: 0.4, webhookLoss: 0 });
    const s = result.summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.buyers.faults['webhook_reorder'] ?? 0).toBeGreaterThan(0);
    expect(s.payments.cancelled_at_portone).toBeGreaterThan(0);
    expect(s.payments.paid).toBeGreaterThan(0);
  });

  it('the webhook arrives before the buyer is back from the payment window', async ({ expect }) => {
    const result = await stacks.shared.drop({ webhookBeforeReturn: 1 });
    const s = result.summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.buyers.faults['webhook_before_return'] ?? 0).toBeGreaterThan(0);
    expect(s.payments.paid).toBeGreaterThan(0);
  });

  it('the PG reports failed, then paid a second later', async ({ expect }) => {
    const result = await stacks.shared.drop({ failedThenPaid: 0.5, failedThenPaidMs: 1_000 });
    const s = result.summary;
    expect(brokenInvariants(s)).toEqual([]);
    expect(s.payments.failed_then_paid).toBeGreaterThan(0);
  });
});
