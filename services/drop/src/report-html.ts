/**
 * The HTML report: one self-contained file (inline CSS and SVG drawn here, no script, font or CDN) with
 * the charts of a drop: confirm latency percentiles over time against the budget, confirm answers per
 * second, inventory depletion (available / held / sold), and outcomes (answers by code, payments,
 * orders, refunds). Each chart is an `<svg data-chart="...">`, so tests can find it.
 */
import type { DropSeries, DropSummary } from './summary.ts';
import { fmtInt, fmtMs, fmtPct, fmtSeconds } from './stats.ts';
import { formatTextReport } from './report-text.ts';

const W = 920;
const H = 300;
const M = { left: 64, right: 24, top: 44, bottom: 44 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

const COLORS = {
  p50: '#2e7d32',
  p90: '#f9a825',
  p99: '#c62828',
  max: '#6d4c41',
  budget: '#b71c1c',
  sold: '#1565c0',
  held: '#ef6c00',
  available: '#cfd8dc',
  approved: '#2e7d32',
  refused: '#9e9e9e',
  marker: '#455a64',
};

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const f1 = (n: number) => (Math.round(n * 10) / 10).toFixed(1);

/** About `count` round tick values from 0 to `max`. */
function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  return ticks;
}

interface Frame {
  x: (t: number) => number;
  y: (v: number) => number;
  xMax: number;
}

function linearFrame(xMax: number, yMax: number): Frame {
  const xm = xMax > 0 ? xMax : 1;
  const ym = yMax > 0 ? yMax : 1;
  return { x: (t) => M.left + (t / xm) * PW, y: (v) => M.top + PH - (v / ym) * PH, xMax: xm };
}

function logFrame(xMax: number, yMin: number, yMax: number): Frame {
  const xm = xMax > 0 ? xMax : 1;
  const lo = Math.log10(yMin);
  const hi = Math.log10(yMax);
  return {
    x: (t) => M.left + (t / xm) * PW,
    y: (v) => M.top + PH - ((Math.log10(Math.max(v, yMin)) - lo) / (hi - lo)) * PH,
    xMax: xm,
  };
}

function xAxis(frame: Frame): string {
  const seconds = frame.xMax / 1000;
  const ticks = niceTicks(seconds, 8);
  const parts = [`<line class="axis" x1="${M.left}" y1="${M.top + PH}" x2="${M.left + PW}" y2="${M.top + PH}"/>`];
  for (const s of ticks) {
    const x = f1(frame.x(s * 1000));
    parts.push(`<line class="tick" x1="${x}" y1="${M.top + PH}" x2="${x}" y2="${M.top + PH + 5}"/><text class="tick-label" x="${x}" y="${M.top + PH + 18}" text-anchor="middle">${s}</text>`);
  }
  parts.push(`<text class="axis-label" x="${M.left + PW / 2}" y="${H - 6}" text-anchor="middle">seconds since the drop opened</text>`);
  return parts.join('');
}

function yAxisLinear(frame: Frame, yMax: number, label: string): string {
  const parts = [`<line class="axis" x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + PH}"/>`];
  for (const v of niceTicks(yMax, 5)) {
    const y = f1(frame.y(v));
    parts.push(`<line class="grid" x1="${M.left}" y1="${y}" x2="${M.left + PW}" y2="${y}"/><text class="tick-label" x="${M.left - 6}" y="${y}" dy="4" text-anchor="end">${fmtInt(v)}</text>`);
  }
  parts.push(`<text class="axis-label" transform="translate(14 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(label)}</text>`);
  return parts.join('');
}

function yAxisLog(frame: Frame, yMin: number, yMax: number, label: string): string {
  const parts = [`<line class="axis" x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + PH}"/>`];
  for (let p = Math.ceil(Math.log10(yMin)); p <= Math.floor(Math.log10(yMax)); p++) {
    const v = 10 ** p;
    const y = f1(frame.y(v));
    const text = v >= 1000 ? `${v / 1000} s` : `${v} ms`;
    parts.push(`<line class="grid" x1="${M.left}" y1="${y}" x2="${M.left + PW}" y2="${y}"/><text class="tick-label" x="${M.left - 6}" y="${y}" dy="4" text-anchor="end">${text}</text>`);
  }
  parts.push(`<text class="axis-label" transform="translate(14 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(label)}</text>`);
  return parts.join('');
}

function marker(frame: Frame, t: number, label: string, cls: string): string {
  if (!(t >= 0) || t > frame.xMax) return '';
  const xn = frame.x(t);
  const x = f1(xn);
  // Near the right edge the label ends at the line instead of being cut off.
  const anchor = xn > M.left + PW - 60 ? 'end' : xn < M.left + 60 ? 'start' : 'middle';
  return `<g class="marker ${cls}"><line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + PH}" stroke="${COLORS.marker}" stroke-dasharray="3 3"/><text x="${x}" y="${M.top - 6}" text-anchor="${anchor}" class="marker-label">${escapeHtml(label)}</text></g>`;
}

/** A row of keys above the plot, clear of the data. */
function legend(items: { label: string; color: string; dashed?: boolean }[]): string {
  let x = M.left;
  return items
    .map((item) => {
      const g = `<g class="legend-item"><line x1="${x}" y1="12" x2="${x + 18}" y2="12" stroke="${item.color}" stroke-width="3"${item.dashed ? ' stroke-dasharray="6 4"' : ''}/><text x="${x + 24}" y="16" class="legend">${escapeHtml(item.label)}</text></g>`;
      x += 44 + item.label.length * 8;
      return g;
    })
    .join('');
}

function svg(chart: string, title: string, body: string, height = H): string {
  return `<svg data-chart="${chart}" viewBox="0 0 ${W} ${height}" width="100%" role="img" aria-label="${escapeHtml(title)}" xmlns="http://www.w3.org/2000/svg"><title>${escapeHtml(title)}</title>${body}</svg>`;
}

function emptyChart(chart: string, title: string): string {
  return svg(chart, title, `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="empty">no data</text>`);
}

/** Confirm latency percentiles per time bucket, log scale, with the budget line. */
export function latencyChart(series: DropSeries): string {
  const buckets = series.latency.filter((b) => b.n > 0);
  const title = 'Confirm latency over time (PortOne\'s view) against the budget';
  if (buckets.length === 0) return emptyChart('latency', title);
  const xMax = Math.max(series.latency.length * series.bucketMs, series.lastPaymentAt);
  const top = Math.max(series.budgetMs, ...buckets.map((b) => b.max));
  const yMax = 10 ** Math.ceil(Math.log10(top * 1.5));
  const yMin = Math.min(1, 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...buckets.map((b) => b.p50))))));
  const frame = logFrame(xMax, yMin, yMax);
  const mid = (t: number) => t + series.bucketMs / 2;
  const line = (key: 'p50' | 'p90' | 'p99' | 'max', dashed = false) => {
    const d = buckets.map((b, i) => `${i === 0 ? 'M' : 'L'}${f1(frame.x(mid(b.t)))},${f1(frame.y(b[key]))}`).join(' ');
    const points = key === 'max' ? '' : buckets
      .map((b) => `<circle class="point ${key}" cx="${f1(frame.x(mid(b.t)))}" cy="${f1(frame.y(b[key]))}" r="2.5" fill="${COLORS[key]}"><title>${(b.t / 1000).toFixed(1)} s: ${key} ${fmtMs(b[key])} (n=${b.n})</title></circle>`)
      .join('');
    return `<path class="series ${key}" d="${d}" fill="none" stroke="${COLORS[key]}" stroke-width="${key === 'p99' ? 2.5 : 1.8}"${dashed ? ' stroke-dasharray="4 3"' : ''}/>${points}`;
  };
  const by = f1(frame.y(series.budgetMs));
  const budget = `<g class="budget"><line class="budget" x1="${M.left}" y1="${by}" x2="${M.left + PW}" y2="${by}" stroke="${COLORS.budget}" stroke-width="2" stroke-dasharray="8 5"/><text x="${M.left + PW - 4}" y="${Number(by) - 6}" text-anchor="end" class="budget-label">budget ${fmtInt(series.budgetMs)} ms</text></g>`;
  return svg(
    'latency',
    title,
    yAxisLog(frame, yMin, yMax, 'confirm latency') + xAxis(frame) + budget + line('max', true) + line('p50') + line('p90') + line('p99') +
      marker(frame, series.lastPaymentAt, 'last payment', 'last-payment') +
      legend([{ label: 'p50', color: COLORS.p50 }, { label: 'p90', color: COLORS.p90 }, { label: 'p99', color: COLORS.p99 }, { label: 'max', color: COLORS.max, dashed: true }, { label: 'budget', color: COLORS.budget, dashed: true }]),
  );
}

/** Confirm answers per second, approved and refused, stacked. */
export function throughputChart(series: DropSeries): string {
  const title = 'Confirm answers per second';
  if (series.latency.length === 0) return emptyChart('throughput', title);
  const perSec = (n: number) => (n * 1000) / series.bucketMs;
  const xMax = Math.max(series.latency.length * series.bucketMs, series.lastPaymentAt);
  const yMax = Math.max(1, ...series.latency.map((b) => perSec(b.approved + b.refused))) * 1.15;
  const frame = linearFrame(xMax, yMax);
  const bw = Math.max(1, (series.bucketMs / xMax) * PW - 1);
  const bars = series.latency
    .map((b) => {
      const x = f1(frame.x(b.t));
      const ya = frame.y(perSec(b.approved));
      const yr = frame.y(perSec(b.approved + b.refused));
      const base = M.top + PH;
      const tip = `${(b.t / 1000).toFixed(1)} s: ${fmtInt(perSec(b.approved))}/s approved, ${fmtInt(perSec(b.refused))}/s refused`;
      return `<rect class="bar approved" x="${x}" y="${f1(ya)}" width="${f1(bw)}" height="${f1(base - ya)}" fill="${COLORS.approved}"><title>${tip}</title></rect>` +
        `<rect class="bar refused" x="${x}" y="${f1(yr)}" width="${f1(bw)}" height="${f1(ya - yr)}" fill="${COLORS.refused}"><title>${tip}</title></rect>`;
    })
    .join('');
  return svg('throughput', title, yAxisLinear(frame, yMax, 'answers per second') + xAxis(frame) + bars +
    marker(frame, series.lastPaymentAt, 'last payment', 'last-payment') +
    legend([{ label: 'approved', color: COLORS.approved }, { label: 'refused', color: COLORS.refused }]));
}

/** Available / held / sold over time, stacked areas. */
export function inventoryChart(series: DropSeries, capacity: number): string {
  const title = 'Inventory over time: sold, held, available';
  const samples = series.inventory;
  if (samples.length === 0) return emptyChart('inventory', title);
  const xMax = Math.max(samples.at(-1)!.t, series.settledAt, 1);
  const yMax = Math.max(capacity, ...samples.map((s) => s.available + s.held + s.sold));
  const frame = linearFrame(xMax, yMax);
  // The areas start at the drop's opening, with everything available.
  const pts = [{ t: 0, available: capacity, held: 0, sold: 0 }, ...samples];
  const area = (cls: 'sold' | 'held' | 'available', lower: (s: (typeof pts)[number]) => number, upper: (s: (typeof pts)[number]) => number) => {
    const top = pts.map((s, i) => `${i === 0 ? 'M' : 'L'}${f1(frame.x(s.t))},${f1(frame.y(upper(s)))}`).join(' ');
    const bottom = [...pts].reverse().map((s) => `L${f1(frame.x(s.t))},${f1(frame.y(lower(s)))}`).join(' ');
    return `<path class="area ${cls}" d="${top} ${bottom} Z" fill="${COLORS[cls]}" fill-opacity="${cls === 'available' ? 0.7 : 0.85}" stroke="${COLORS[cls]}"/>`;
  };
  const last = samples.at(-1)!;
  const points = samples
    .filter((_, i) => i % Math.max(1, Math.floor(samples.length / 80)) === 0 || _ === last)
    .map((s) => `<circle class="point sold" cx="${f1(frame.x(s.t))}" cy="${f1(frame.y(s.sold))}" r="2" fill="${COLORS.sold}"><title>${(s.t / 1000).toFixed(1)} s: sold ${fmtInt(s.sold)}, held ${fmtInt(s.held)}, available ${fmtInt(s.available)}</title></circle>`)
    .join('');
  return svg('inventory', title, yAxisLinear(frame, yMax, 'places') + xAxis(frame) +
    area('sold', () => 0, (s) => s.sold) +
    area('held', (s) => s.sold, (s) => s.sold + s.held) +
    area('available', (s) => s.sold + s.held, (s) => s.sold + s.held + s.available) + points +
    marker(frame, series.lastPaymentAt, 'last payment', 'last-payment') + marker(frame, series.settledAt, 'settled', 'settled') +
    legend([{ label: 'sold', color: COLORS.sold }, { label: 'held', color: COLORS.held }, { label: 'available', color: COLORS.available }]));
}

/** The waiting room: buyers waiting (line) and admitted per second (bars), second by second. */
export function queueChart(series: DropSeries): string {
  const title = 'Waiting room: buyers waiting, and admitted per second';
  const points = series.queue ?? [];
  if (points.length === 0) return emptyChart('queue', title);
  const xMax = Math.max(points.length * 1000, 1);
  const waitMax = Math.max(1, ...points.map((p) => p.waiting)) * 1.1;
  const rateMax = Math.max(1, ...points.map((p) => p.admittedPerSecond));
  const frame = linearFrame(xMax, waitMax);
  const bw = Math.max(1, (1000 / xMax) * PW - 1);
  const bars = points
    .map((p) => {
      const h = (p.admittedPerSecond / rateMax) * PH * 0.5;
      return `<rect class="bar admitted" x="${f1(frame.x(p.t))}" y="${f1(M.top + PH - h)}" width="${f1(bw)}" height="${f1(h)}" fill="${COLORS.approved}" fill-opacity="0.6"><title>${(p.t / 1000).toFixed(0)} s: ${fmtInt(p.admittedPerSecond)} admitted, ${fmtInt(p.waiting)} waiting</title></rect>`;
    })
    .join('');
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${f1(frame.x(p.t))},${f1(frame.y(p.waiting))}`).join(' ');
  return svg('queue', title, yAxisLinear(frame, waitMax, 'buyers waiting') + xAxis(frame) + bars +
    `<path class="line waiting" d="${line}" fill="none" stroke="${COLORS.held}" stroke-width="2"/>` +
    legend([{ label: 'waiting', color: COLORS.held }, { label: `admitted per second (peak ${fmtInt(rateMax)})`, color: COLORS.approved }]));
}

/** Where the buyers who got nothing were told: in the queue, at selection, after entering card details. */
export function refusalsChart(summary: DropSummary): string {
  const r = summary.refusals;
  const rows: [string, number, string][] = [
    ['told sold out in the queue', r.in_queue, COLORS.available],
    ['refused at selection (order 409)', r.at_selection, '#8d6e63'],
    ['refused after card details (confirm SOLD_OUT)', r.after_card, COLORS.p99],
  ];
  const max = Math.max(1, ...rows.map(([, n]) => n));
  const rowH = 26;
  const height = M.top + rows.length * rowH + 20;
  const body = rows.map(([label, n, color], i) => {
    const y = M.top + i * rowH;
    const w = (n / max) * (PW - 260);
    return `<g class="refusal" data-stage="${i}"><text x="${M.left}" y="${y + 16}" class="legend">${escapeHtml(label)}</text>` +
      `<rect x="${M.left + 300}" y="${y + 4}" width="${f1(Math.max(w, 1))}" height="16" fill="${color}"/>` +
      `<text x="${f1(M.left + 306 + w)}" y="${y + 16}" class="legend">${fmtInt(n)}</text></g>`;
  }).join('');
  return svg('refusals', 'Where buyers were refused', body, height);
}

const OUTCOME_COLORS: Record<string, string> = {
  APPROVED: COLORS.approved, SOLD_OUT: '#8d6e63', paid: COLORS.sold, declined: '#ad1457', abandoned: '#78909c', refunded: COLORS.held,
  'cancelled at PortOne': '#6a1b9a', expired: '#78909c', released: '#ad1457', 'never held': '#bdbdbd',
};

/** Horizontal bars, grouped: confirm answers by code, payments, orders, refunds by reason. */
export function outcomesChart(summary: DropSummary): string {
  const p = summary.payments;
  const groups: { title: string; bars: [string, number][] }[] = [
    { title: 'Confirm answers', bars: Object.entries(summary.confirms.by_code) },
    { title: 'Approved payments', bars: [['paid', p.paid], ['declined', p.declined], ['abandoned', p.abandoned], ['refunded', p.refunded], ['cancelled at PortOne', p.cancelled_at_portone]] },
    { title: 'Orders (final)', bars: Object.entries(summary.orders).map(([k, v]): [string, number] => [k === 'pending' ? 'never held' : k, v]) },
    { title: 'Refunds by reason', bars: Object.entries(summary.refunds.by_reason) },
  ];
  const rowH = 22;
  const labelW = 190;
  const barMax = W - labelW - 140;
  let y = 10;
  const parts: string[] = [];
  for (const g of groups) {
    parts.push(`<text class="group-title" x="8" y="${y + 14}">${escapeHtml(g.title)}</text>`);
    y += 22;
    const max = Math.max(1, ...g.bars.map(([, v]) => v));
    const total = g.bars.reduce((n, [, v]) => n + v, 0);
    if (g.bars.length === 0) {
      parts.push(`<text class="tick-label" x="${labelW}" y="${y + 14}">none</text>`);
      y += rowH;
    }
    for (const [label, value] of g.bars) {
      const w = value > 0 ? Math.max(2, (value / max) * barMax) : 0;
      const color = OUTCOME_COLORS[label] ?? '#5c6bc0';
      parts.push(
        `<g class="outcome" data-label="${escapeHtml(label)}" data-value="${value}"><text class="bar-label" x="${labelW - 8}" y="${y + 15}" text-anchor="end">${escapeHtml(label)}</text>` +
          `<rect class="bar" x="${labelW}" y="${y + 3}" width="${f1(w)}" height="${rowH - 6}" fill="${color}"><title>${escapeHtml(label)}: ${fmtInt(value)}</title></rect>` +
          `<text class="bar-value" x="${labelW + w + 6}" y="${y + 15}">${fmtInt(value)} (${fmtPct(value, total)})</text></g>`,
      );
      y += rowH;
    }
    y += 10;
  }
  return svg('outcomes', 'Outcomes: confirm answers, payments, orders, refunds', parts.join(''), y + 10);
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans KR",sans-serif;margin:0;background:#fafafa;color:#212121}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#616161;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:8px;padding:10px 12px}
.card b{display:block;font-size:20px}.card span{color:#616161;font-size:12px}
section.chart{background:#fff;border:1px solid #e0e0e0;border-radius:8px;padding:8px 12px;margin-top:12px}
section.chart h3{margin:6px 0;font-size:15px}
.inv{list-style:none;padding:0}.inv li{background:#fff;border:1px solid #e0e0e0;border-radius:8px;padding:8px 12px;margin:6px 0}
.ok{color:#2e7d32;font-weight:600}.fail{color:#c62828;font-weight:600}
.inv ul{margin:4px 0 0;color:#c62828}
pre{background:#263238;color:#eceff1;padding:12px;border-radius:8px;overflow:auto;font-size:12px}
table{border-collapse:collapse;background:#fff}td{border:1px solid #e0e0e0;padding:3px 8px;font-size:12px}
svg text{font-size:12px;fill:#424242}svg .tick-label{font-size:11px;fill:#616161}svg .axis-label{font-size:12px;fill:#616161}
svg .axis{stroke:#9e9e9e}svg .tick{stroke:#9e9e9e}svg .grid{stroke:#eeeeee}
svg .legend{font-size:12px}svg .marker-label{font-size:11px;fill:#455a64}svg .budget-label{fill:#b71c1c;font-weight:600}
svg .group-title{font-weight:600;font-size:13px}svg .empty{font-size:16px;fill:#9e9e9e}
`;

/** The whole report as one HTML document. */
export function renderHtmlReport(summary: DropSummary, series: DropSeries): string {
  const s = summary;
  const lat = s.confirms.latency_ms;
  const cards: [string, string][] = [
    ['sold', `${fmtInt(s.inventory.sold)} / ${fmtInt(s.inventory.capacity)}`],
    ['confirms', `${fmtInt(s.confirms.total)}`],
    ['approved', `${fmtInt(s.confirms.approved)}`],
    ['p99 confirm', fmtMs(lat.p99)],
    ['max confirm', fmtMs(lat.max)],
    ['budget', `${fmtInt(lat.budget)} ms`],
    ['refunds', `${fmtInt(s.refunds.count)}`],
    ['confirms SOLD_OUT', fmtPct(s.refusals.after_card, s.confirms.total)],
    ['settled after', fmtSeconds(s.timing.settle_ms)],
    ...(s.cpu ? [['CPU per buyer, all parts', `${s.cpu.ms_per_buyer.toFixed(1)} ms`] as [string, string]] : []),
  ];
  const invariants = s.invariants
    .map((r) => `<li data-invariant="${r.id}" data-ok="${r.ok}"><span class="${r.ok ? 'ok' : 'fail'}">${r.ok ? 'ok' : 'FAIL'}</span> <b>${r.id}. ${escapeHtml(r.name)}</b>: ${escapeHtml(r.summary)}` +
      (r.violations.length ? `<ul>${r.violations.map((v) => `<li>${escapeHtml(v)}</li>`).join('')}${r.violationCount > r.violations.length ? `<li>… and ${r.violationCount - r.violations.length} more</li>` : ''}</ul>` : '') + '</li>')
    .join('');
  const options = Object.entries(s.options).map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(String(v))}</td></tr>`).join('');
  // Data for anyone who wants to re-plot; `<` escaped so the JSON cannot close the script element.
  const data = JSON.stringify({ summary: s, series }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>dropgate drop ${escapeHtml(s.event_id)}</title><style>${CSS}</style></head>
<body><main>
<h1>dropgate drop <code>${escapeHtml(s.event_id)}</code> <span class="${s.ok ? 'ok' : 'fail'}">${s.ok ? 'all invariants hold' : 'INVARIANT BROKEN'}</span></h1>
<p class="sub">${escapeHtml(s.started_at)} · ${fmtInt(s.options.buyers)} buyers, ${escapeHtml(s.options.arrival)}, ${s.options.concurrency} at a time${s.options.portone !== 'v1' ? ` · PortOne ${escapeHtml(s.options.portone)}` : ''} · ${escapeHtml(s.stack)}</p>
<div class="cards">${cards.map(([k, v]) => `<div class="card"><b>${escapeHtml(v)}</b><span>${escapeHtml(k)}</span></div>`).join('')}</div>
<h2>Invariants</h2><ul class="inv">${invariants}</ul>
<h2>Charts</h2>
<section class="chart"><h3>Confirm latency (p50 / p90 / p99 / max per ${fmtInt(series.bucketMs)} ms) against the ${fmtInt(series.budgetMs)} ms budget</h3>${latencyChart(series)}</section>
<section class="chart"><h3>Confirm answers per second</h3>${throughputChart(series)}</section>
<section class="chart"><h3>Inventory depletion</h3>${inventoryChart(series, s.inventory.capacity)}</section>
<section class="chart"><h3>Outcomes</h3>${outcomesChart(s)}</section>
<section class="chart"><h3>Where buyers were refused: ${fmtPct(s.refusals.after_card, s.confirms.total)} of confirms SOLD_OUT after card details</h3>${refusalsChart(s)}</section>
${s.queue ? `<section class="chart"><h3>Waiting room (${escapeHtml(s.queue.mode)}): longest queue ${fmtInt(s.queue.max_length)}, admitted ${fmtInt(s.queue.admitted)}, told sold out ${fmtInt(s.queue.told_sold_out)}; wait p50 ${fmtSeconds(s.queue.wait_ms.p50)}, p99 ${fmtSeconds(s.queue.wait_ms.p99)}</h3>${queueChart(series)}</section>` : ''}
<h2>Report</h2><pre>${escapeHtml(formatTextReport(s))}</pre>
<h2>Options</h2><table>${options}</table>
<script type="application/json" id="drop-data">${data}</script>
</main></body></html>
`;
}
