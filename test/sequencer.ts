/**
 * The order test files start in. Vitest runs the files it has timed before longest first; on a fresh
 * clone (CI) it knows no times and runs the largest files first, which put the rehearsals that wait
 * longest (a fair rush with its waiting list, the chaos seeds: small files, most of a minute each) at
 * the end of the run, where nothing else overlaps them. Without times, this starts the files known
 * to take longest (LONGEST, longest first), then the other files that start a stack, then the rest,
 * largest first in each group.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, longest first, as a warm run with seven files at once timed them
 * (2026-12-01: the chaos seeds 47 s, the drop lifecycle 30, ... the Postgres restart 4.6): whole
 * drops and campaigns (mostly waiting), then stacks taken through failovers, restarts and hold
 * lifecycles. Small files among them (Redis readiness, the alert rules under promtool) otherwise ran
 * last by size on a fresh clone and made the run's tail.
 */
const LONGEST = [
  'services/chaos/test/chaos.test.ts',
  'services/stack/test/drop-lifecycle.test.ts',
  'services/drop/test/cluster.test.ts',
  'services/drop/test/rush.test.ts',
  'services/drop/test/faults-late.test.ts',
  'services/drop/test/split.test.ts',
  'test/metrics-proof.test.ts',
  'services/stack/test/lifecycle.test.ts',
  'services/stack/test/integrity.test.ts',
  'services/stack/test/waitlist.test.ts',
  'services/stack/test/failover.test.ts',
  'services/api/test/redis-ready.test.ts',
  'services/stack/test/v2.test.ts',
  'services/stack/test/relay.test.ts',
  'services/stack/test/lost-hold.test.ts',
  'services/drop/test/cli.test.ts',
  'services/stack/test/cluster.test.ts',
  'services/drop/test/v2-faults.test.ts',
  'services/drop/test/report.browser.test.ts',
  'services/stack/test/reservation.test.ts',
  'test/startup.test.ts',
  'services/drop/test/faults-ordering.test.ts',
  'services/stack/test/settlement-batch.test.ts',
  'services/drop/test/invariants.test.ts',
  'services/drop/test/faults-webhooks.test.ts',
  'services/stack/test/deadline.test.ts',
  'services/stack/test/redis-restart.test.ts',
  'test/prometheus-rules.test.ts',
  'services/stack/test/race.test.ts',
  'services/api/test/postgres-restart.test.ts',
];

function rank(spec: TestSpecification): number {
  const path = spec.moduleId.replace(/\\/g, '/');
  const known = LONGEST.findIndex((f) => path.endsWith(`/${f}`));
  if (known >= 0) return known;
  if (/\/services\/(drop|chaos|stack)\/test\//.test(path)) return LONGEST.length;
  return LONGEST.length + 1;
}

export default class DropgateSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const timed = files.every((spec) => this.ctx.cache.getTestSpecificationResult(spec));
    if (timed) return super.sort(files);
    const bySize = await super.sort(files);
    const position = new Map(bySize.map((spec, i) => [spec, i]));
    return [...files].sort((a, b) => rank(a) - rank(b) || position.get(a)! - position.get(b)!);
  }
}
