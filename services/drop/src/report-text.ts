/** The final report on stdout: what sold, what was refused and why, how fast, and the invariants. */
import type { DropSummary } from './summary.ts';
import { fmtInt, fmtMs, fmtPct, fmtSeconds } from './stats.ts';

function list(counts: Record<string, number>, skip: readonly string[] = []): string {
  const entries = Object.entries(counts).filter(([k, v]) => v > 0 && !skip.includes(k));
  if (entries.length === 0) return 'none';
  return entries.map(([k, v]) => `${k} ${fmtInt(v)}`).join(' · ');
}

const won = (n: number) => `₩${fmtInt(n)}`;

export function formatTextReport(s: DropSummary): string {
  const o = s.options;
  const lat = s.confirms.latency_ms;
  const lines: string[] = [];
  const row = (label: string, text: string) => lines.push(`${label.padEnd(16)}${text}`);
  const arrival = o.arrival === 'burst' ? 'burst' : `ramp over ${o.rampSeconds} s`;
  const rush = [o.holdAt === 'order' ? `hold at order (reservation ${o.reservationTtl} s)` : '', o.waitingRoom ? `${o.waitingRoom} waiting room` : '', o.waitlist ? 'waiting list' : '', o.buyerTokens ? 'signed buyers' : ''].filter(Boolean);
  lines.push(`dropgate drop ${s.event_id}: ${fmtInt(o.buyers)} buyers (${arrival}, ${o.waitingRoom ? 'paced by the waiting room' : `${o.concurrency} at a time`}), hold TTL ${o.holdTtl} s, seed ${o.seed}${o.portone !== 'v1' ? `, PortOne ${o.portone}` : ''}${rush.length ? `; ${rush.join(', ')}` : ''}`);
  lines.push(`stack: ${s.stack}`);
  lines.push('');
  const inv = s.inventory;
  row('Capacity', `${fmtInt(inv.capacity)} (${fmtInt(inv.seats)} seats + ${fmtInt(inv.pool)} pool places)`);
  row('Sold', `${fmtInt(inv.sold)} (${fmtPct(inv.sold, inv.capacity)}), remaining ${fmtInt(inv.remaining)}${inv.held > 0 ? `, still held ${fmtInt(inv.held)}` : ''}`);
  const orders = Object.fromEntries(Object.entries(s.orders).map(([k, v]) => [k === 'pending' ? 'never held' : k, v]));
  row('Orders', `${fmtInt(s.buyers.orders_created)} created${Object.keys(s.buyers.order_refusals).length ? ` (refused: ${list(s.buyers.order_refusals)})` : ''}; final: ${list(orders)}`);
  if (s.queue) {
    const q = s.queue;
    row('Waiting room', `${q.mode}, ${o.admitPerSecond}/s, max ${fmtInt(o.maxActive)} active: ${fmtInt(q.joined)} joined, longest queue ${fmtInt(q.max_length)}; admitted ${fmtInt(q.admitted)}, told sold out ${fmtInt(q.told_sold_out)}, expired ${fmtInt(q.expired)}${q.never_resolved ? `, NEVER TOLD ${fmtInt(q.never_resolved)}` : ''}${q.errors ? `, errors ${fmtInt(q.errors)}` : ''}`);
    row('  admissions', `peak ${fmtInt(q.admission_rate.peak)}/s, mean ${q.admission_rate.mean.toFixed(1)}/s while admitting; ${fmtInt(q.polls)} polls (${fmtInt(q.rate_limited_polls)} too fast, answered 429)`);
    row('  wait', `admitted after p50 ${fmtSeconds(q.wait_ms.p50)} · p90 ${fmtSeconds(q.wait_ms.p90)} · p99 ${fmtSeconds(q.wait_ms.p99)} · max ${fmtSeconds(q.wait_ms.max)}; told sold out after p50 ${fmtSeconds(q.sold_out_after_ms.p50)} · max ${fmtSeconds(q.sold_out_after_ms.max)}`);
  }
  if (s.waitlist) row('Waiting list', list(s.waitlist));
  const r = s.refusals;
  row('Refused', `in the queue ${fmtInt(r.in_queue)} · at selection ${fmtInt(r.at_selection)} · after entering card details ${fmtInt(r.after_card)} confirms (${fmtPct(r.after_card, s.confirms.total)} of confirms; ${fmtInt(r.buyers_after_card)} buyers, ${fmtPct(r.buyers_after_card, o.buyers)})`);
  row('Confirms', `${fmtInt(s.confirms.total)} answered: approved ${fmtInt(s.confirms.approved)}, refused ${fmtInt(s.confirms.refused)}`);
  row('  refusals', list(s.confirms.by_code, ['APPROVED']));
  const p = s.payments;
  row('Payments', `paid ${fmtInt(p.paid)} (${won(p.amount_paid)}) · declined ${fmtInt(p.declined)} · abandoned ${fmtInt(p.abandoned)} · refunded ${fmtInt(p.refunded)} · cancelled at PortOne ${fmtInt(p.cancelled_at_portone)}${p.failed_then_paid ? ` · failed→paid ${fmtInt(p.failed_then_paid)}` : ''}`);
  row('  windows', `${fmtInt(s.buyers.payment_windows)} opened, ${fmtInt(s.buyers.retries)} of them paying again on the same order`);
  row('Refunds', s.refunds.count === 0 ? 'none' : `${fmtInt(s.refunds.count)} (${won(s.refunds.amount)}): ${list(s.refunds.by_reason)}`);
  const w = s.webhooks;
  row('Webhooks', `${fmtInt(w.attempts)} delivered attempts (${fmtInt(w.duplicates)} duplicates, ${fmtInt(w.refused)} not 2xx), ${fmtInt(w.lost)} lost`);
  if (Object.keys(s.buyers.faults).length > 0) row('Faults', list(s.buyers.faults));
  const rest = [o.restLatencyMs > 0 ? `+${o.restLatencyMs} ms latency` : '', o.restFailureRate > 0 ? `${fmtPct(o.restFailureRate, 1)} of calls answered 503` : ''].filter(Boolean);
  if (rest.length > 0) row('PortOne REST', rest.join(', '));
  row('Confirm latency', `p50 ${fmtMs(lat.p50)} · p90 ${fmtMs(lat.p90)} · p99 ${fmtMs(lat.p99)} · max ${fmtMs(lat.max)} (n=${fmtInt(lat.n)}, PortOne's view)`);
  row('  budget', `${fmtInt(lat.budget)} ms: ${fmtInt(lat.n - lat.over_budget)} of ${fmtInt(lat.n)} within (${fmtPct(lat.n - lat.over_budget, lat.n)}), ${fmtInt(lat.timed_out)} timed out at PortOne`);
  const t = s.timing;
  row('Timing', `buying ${fmtSeconds(t.buying_ms)}, settled ${fmtSeconds(t.settle_ms)} after the last payment${t.settled ? '' : ` (NOT settled: ${t.pending.join(', ')})`}, total ${fmtSeconds(t.total_ms)}`);
  if (s.cpu) row('CPU', cpuLine(s.cpu));
  if (s.buyers.errors.length > 0) row('Errors', `${s.buyers.errors.length} (first: ${s.buyers.errors[0]})`);
  lines.push('');
  lines.push('Invariants');
  for (const r of s.invariants) {
    lines.push(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.id}. ${r.name}: ${r.summary}`);
    for (const v of r.violations) lines.push(`         - ${v}`);
    if (r.violationCount > r.violations.length) lines.push(`         ... and ${r.violationCount - r.violations.length} more`);
  }
  lines.push('');
  lines.push(s.ok ? 'All invariants hold.' : `BROKEN: ${s.invariants.filter((r) => !r.ok).map((r) => `${r.id}. ${r.name}`).join('; ')}`);
  if (s.report_path) lines.push(`Report: ${s.report_path}`);
  return lines.join('\n');
}

const CPU_PARTS: [keyof NonNullable<DropSummary['cpu']>['seconds'], string][] = [
  ['worker', 'worker'], ['api', 'API'], ['postgres', 'Postgres'], ['redis', 'Redis'], ['simulator', 'simulator'], ['buyers', 'buyer processes'], ['drop', 'drop process'],
];

/** The CPU each part used over the drop, largest first (Redis and Postgres: whole servers). */
export function cpuLine(cpu: NonNullable<DropSummary['cpu']>): string {
  const parts = CPU_PARTS
    .map(([key, name]) => [name, cpu.seconds[key]] as const)
    .filter((p): p is readonly [string, number] => p[1] !== null && p[1] >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([name, s]) => `${name} ${s.toFixed(1)} s`);
  return `${cpu.total_s.toFixed(1)} s, ${cpu.ms_per_buyer.toFixed(1)} ms a buyer: ${parts.join(' · ')} (Redis and Postgres: the whole servers)`;
}
