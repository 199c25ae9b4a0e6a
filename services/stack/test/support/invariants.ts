/** The invariant checker run against a test's stack and simulator. */
import { checkAll, ledgerOf, type PortOneLedger } from '@dropgate/invariants';
import type { Simulator } from '@dropgate/portone-sim';
import type { TestStack } from '@dropgate/stack';

/**
 * The invariants (no oversell, money and tickets match, ...) of event `id` that the checker finds
 * broken, one `<invariant>. <violations>` line each, with `ledger` as PortOne's (default: the
 * simulator's now). Empty when every one holds.
 */
export async function brokenInvariants(stack: TestStack, sim: Simulator, id: string, ledger: PortOneLedger = sim.ledger()): Promise<string[]> {
  const report = await checkAll({
    eventId: id, db: stack.api.deps.db, redis: stack.redis, apiUrl: stack.url, ledger: ledgerOf(ledger, id), adminToken: stack.config.adminToken!,
  });
  return report.results.filter((r) => !r.ok).map((r) => `${r.id}. ${r.violations.join('; ')}`);
}
