/**
 * `@dropgate/drop`: a simulated drop end to end (`npm run drop`), as a library for tests: run a drop,
 * check dropgate's invariants, render the reports.
 */
import type { InvariantInputs as BaseInvariantInputs } from '@dropgate/invariants';
import type { Ledger } from '@dropgate/portone-sim';
export { runDrop, DropSetupError, type DropResult, type RunContext } from './run.ts';
export { DEFAULT_OPTIONS, UsageError, helpText, parseDropArgs, validate, type DropOptions, type Arrival } from './options.ts';
export { checkInvariants, ledgerOf, INVARIANT_NAMES, type InvariantReport, type InvariantResult, type InvariantId } from '@dropgate/invariants';
/** The checks' inputs with the simulator's ledger (the checks live in `@dropgate/invariants`). */
export type InvariantInputs = BaseInvariantInputs<Ledger>;
export { formatTextReport } from './report-text.ts';
export { renderHtmlReport, escapeHtml } from './report-html.ts';
export { buildVenue, chooseFromFree, chooseOrder, eventBody, POOL_ID, type FreePlaces, type Venue } from './venue.ts';
export { percentile, summarize, bucketize, bucketWidth } from './stats.ts';
export { createProgressReporter, type ProgressState, type ProgressStream } from './progress.ts';
export { openTarget, recreateDatabase, type DropTarget, type SimControl } from './target.ts';
export { orphanStatus, settleStatus, waitSettled } from './settle.ts';
export { startSimProcess, type ChildService } from './processes.ts';
export { commandsPer, localPostgresCpu, processCpu, redisCommandStats, redisCpu } from './cpu.ts';
export type { DropSummary, DropSeries } from './summary.ts';
