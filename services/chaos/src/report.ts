/** What the campaign prints: a line per scenario, a failure in full, and the summary by kind. */
import type { ScenarioResult, Violation } from './run-scenario.ts';
import { describeScenario, PORTONE_APIS } from './scenario.ts';

export const replayCommand = (seed: number): string => `npm run chaos -- --replay ${seed}`;

/**
 * A violation's kind: its message with the particulars (ids, amounts, counts) taken out, so the same
 * defect seen in many scenarios is counted as one kind.
 */
export function violationKind(v: Violation): string {
  const generic = v.message
    .replace(/\bimp_(?!uid)[0-9a-z]+/gi, '<imp>')
    .replace(/\bv2\.[0-9a-f-]{36}\b/g, '<imp>')
    .replace(/[a-z0-9][a-z0-9-]{0,27}\.[0-9A-Za-z]{11}/g, '<order>')
    .replace(/₩[\d,]+/g, '₩n')
    .replace(/\{[^{}]*\}/g, '{…}')
    .replace(/\b\d+(\.\d+)?\b/g, 'n')
    .replace(/last output: .*/, 'last output: …');
  return `${v.invariant}. ${generic}`.slice(0, 240);
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function scenarioLine(index: number, r: ScenarioResult): string {
  const faults = r.spec.globalFaults.length > 0 ? ` [${r.spec.globalFaults.join(', ')}]` : '';
  const head = `${r.ok ? 'ok  ' : 'FAIL'} #${index} seed ${r.seed} ${r.spec.api}${r.spec.event.holdAt === 'order' ? ' reserving' : ''} ${seconds(r.durationMs)}${faults} ${r.outcome}`;
  if (r.ok) return head;
  return `${head}\n     ${r.violations.length} violation(s); replay: ${replayCommand(r.seed)}\n${r.violations.slice(0, 8).map((v) => `     ${v.invariant}. ${v.message}`).join('\n')}${r.violations.length > 8 ? `\n     … ${r.violations.length - 8} more` : ''}`;
}

/** Everything about one scenario, for its file in the log directory. */
export function scenarioReport(r: ScenarioResult, logDir: string): string {
  return [
    `scenario seed ${r.seed} (event ${r.eventId}, PortOne ${r.spec.api}): ${r.ok ? 'all invariants hold' : `${r.violations.length} violation(s)`}`,
    `replay: ${replayCommand(r.seed)}`,
    `outcome: ${r.outcome}`,
    `took ${seconds(r.durationMs)} (settled ${r.settle.settled ? `after ${seconds(r.settle.ms)}` : `NOT, still pending: ${r.settle.pending.join(', ')}`})`,
    '',
    'violations:',
    ...r.violations.map((v) => `  ${v.invariant}. ${v.message}`),
    '',
    'the scenario (generated from the seed):',
    ...describeScenario(r.spec),
    '',
    'what happened:',
    ...r.log.map((l) => `  ${l}`),
    '',
    ...(r.trace.length > 0 ? ['PortOne\'s ledger and the record, in time order:', ...r.trace.map((l) => `  ${l}`), ''] : []),
    `process logs: ${logDir}/api.log, ${logDir}/worker.log`,
    '',
  ].join('\n');
}

export interface KindCount {
  kind: string;
  count: number;
  seeds: number[];
  example: string;
}

export function byKind(results: readonly ScenarioResult[]): KindCount[] {
  const kinds = new Map<string, KindCount>();
  for (const r of results) {
    for (const v of r.violations) {
      const kind = violationKind(v);
      const k = kinds.get(kind) ?? { kind, count: 0, seeds: [], example: `${v.invariant}. ${v.message}` };
      k.count++;
      if (!k.seeds.includes(r.seed)) k.seeds.push(r.seed);
      kinds.set(kind, k);
    }
  }
  return [...kinds.values()].sort((a, b) => b.seeds.length - a.seeds.length || b.count - a.count);
}

export function summaryText(results: readonly ScenarioResult[], elapsedMs: number, opts: { parallel: number; campaignSeed: number | null; logDir: string }): string {
  const failed = results.filter((r) => !r.ok);
  const avg = results.length > 0 ? results.reduce((n, r) => n + r.durationMs, 0) / results.length : 0;
  const lines = [
    '',
    `${results.length} scenarios in ${seconds(elapsedMs)} (${seconds(avg)} each on average, up to ${opts.parallel} at once; ${seconds(results.length > 0 ? elapsedMs / results.length : 0)} of wall time per scenario)${opts.campaignSeed !== null ? `, campaign seed ${opts.campaignSeed}` : ''}`,
    `by PortOne API: ${PORTONE_APIS.map((api) => {
      const of = results.filter((r) => r.spec.api === api);
      return `${api} ${of.length}${of.some((r) => !r.ok) ? ` (${of.filter((r) => !r.ok).length} failed)` : ''}`;
    }).join(', ')}`,
    failed.length === 0 ? 'no violation: every invariant held in every scenario' : `${failed.length} scenario(s) FAILED, ${failed.reduce((n, r) => n + r.violations.length, 0)} violation(s)`,
  ];
  if (failed.length > 0) {
    lines.push('', 'violations by kind (scenarios, occurrences):');
    for (const k of byKind(results)) {
      lines.push(`  ${String(k.seeds.length).padStart(3)} ${String(k.count).padStart(4)}  ${k.kind}`);
      lines.push(`           e.g. seed ${k.seeds[0]}: ${k.example.slice(0, 300)}`);
      lines.push(`           seeds: ${k.seeds.slice(0, 12).join(' ')}${k.seeds.length > 12 ? ' …' : ''}`);
    }
    lines.push('', `replay one: ${replayCommand(failed[0]!.seed)}   (each failure is written in full to ${opts.logDir}/seed-<seed>.txt)`);
  }
  return lines.join('\n');
}
