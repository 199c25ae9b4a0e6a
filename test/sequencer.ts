/**
 * The order test files start in. Vitest runs the files it has timed before longest first; on a fresh
 * clone (CI) it knows no times and runs the largest files first, which put the rehearsals that wait
 * longest (a fair rush with its waiting list, the chaos seeds: small files, most of a minute each) at
 * the end of the run, where nothing else overlaps them. Without times, this starts the files that run
 * whole drops, then those that start a stack, then the rest, largest first in each group.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Files that run whole drops or campaigns (each 20-45 s, mostly waiting), longest first; the cluster
 * rehearsal's failover takes 10 s or, now and then, a minute, so it starts early too.
 */
const LONGEST = [
  'services/chaos/test/chaos.test.ts',
  'services/drop/test/cluster.test.ts',
  'services/drop/test/faults-webhooks.test.ts',
  'services/drop/test/faults-ordering.test.ts',
  'services/drop/test/faults-late.test.ts',
  'services/stack/test/drop-lifecycle.test.ts',
  'services/drop/test/split.test.ts',
  'services/drop/test/rush.test.ts',
  'test/metrics-proof.test.ts',
  'test/startup.test.ts',
  'services/drop/test/cli.test.ts',
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
