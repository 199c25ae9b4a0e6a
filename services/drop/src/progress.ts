/**
 * Live progress on stderr: on a terminal a redrawn bar (sold █, held ▓, remaining ░) with buyers,
 * confirms per second and the current p99; otherwise a plain line every few seconds.
 */
import { fmtMs } from './stats.ts';

export interface ProgressState {
  phase: 'buying' | 'settling' | 'checking';
  elapsedMs: number;
  buyers: number;
  buyersDone: number;
  capacity: number;
  sold: number;
  held: number;
  available: number;
  /** Confirm answers per second over the last couple of seconds. */
  confirmsPerSecond: number;
  /** p99 confirm latency over the last couple of seconds (null without confirms). */
  p99Ms: number | null;
  /** While settling: what is still going on. */
  pending: string[];
}

export interface ProgressReporter {
  update(state: ProgressState): void;
  /** Clears the live line (TTY) before the report is printed. */
  done(): void;
}

export interface ProgressStream {
  write(text: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

function bar(s: ProgressState, width: number): string {
  if (s.capacity <= 0) return ''.padEnd(width, ' ');
  const sold = Math.round((s.sold / s.capacity) * width);
  const held = Math.min(width - sold, Math.round((s.held / s.capacity) * width));
  return '█'.repeat(sold) + '▓'.repeat(held) + '░'.repeat(Math.max(0, width - sold - held));
}

function describe(s: ProgressState): string {
  const parts = [
    s.phase === 'buying' ? `buyers ${s.buyersDone}/${s.buyers}` : s.phase,
    `sold ${s.sold} held ${s.held} remaining ${s.available}`,
  ];
  if (s.phase === 'buying') parts.push(`${Math.round(s.confirmsPerSecond)} confirms/s`, `p99 ${s.p99Ms === null ? '-' : fmtMs(s.p99Ms)}`);
  if (s.phase === 'settling' && s.pending.length > 0) parts.push(s.pending.join(', '));
  return parts.join(' │ ');
}

export function createProgressReporter(stream: ProgressStream, opts: { quiet: boolean; intervalMs?: number }): ProgressReporter {
  if (opts.quiet) return { update: () => undefined, done: () => undefined };
  if (stream.isTTY) {
    let last = 0;
    let drawn = false;
    return {
      update(s) {
        const now = performance.now();
        if (now - last < 100) return;
        last = now;
        const line = `${(s.elapsedMs / 1000).toFixed(1).padStart(5)}s ▕${bar(s, 24)}▏ ${describe(s)}`;
        const columns = stream.columns ?? 120;
        stream.write(`\r\x1b[2K${line.length > columns - 1 ? line.slice(0, columns - 1) : line}`);
        drawn = true;
      },
      done() {
        if (drawn) stream.write('\r\x1b[2K');
        drawn = false;
      },
    };
  }
  const every = opts.intervalMs ?? 2_000;
  let nextAt = 0;
  let lastPhase = '';
  return {
    update(s) {
      if (s.elapsedMs < nextAt && s.phase === lastPhase) return;
      nextAt = s.elapsedMs + every;
      lastPhase = s.phase;
      stream.write(`drop [${(s.elapsedMs / 1000).toFixed(1).padStart(5)}s] ${describe(s).replace(/ │ /g, ', ')}\n`);
    },
    done: () => undefined,
  };
}
