/**
 * Whether the API's event loop keeps up, for load shedding (under-pressure's health check): the mean
 * delay of a 10 ms timer since the last look, less that resolution, against MAX_EVENT_LOOP_DELAY_MS.
 *
 * The delay of the API's own start-up does not count: compiling every route's schemas when the app
 * becomes ready blocks the loop (about 80 ms for the first app in a process here, several times
 * that on a busy machine), and a look taken just after it would shed the first requests after a
 * (re)start, which is when a drop's buyers come back. So the gate answers "keeps up" until `open()`
 * (the app is ready), and counts only the delay from then on.
 *
 * node's monitor is a timer: it sees the loop held by request handling and other I/O callbacks, not
 * by a callback in the timers phase it runs in (the API does its work in the former).
 *
 * under-pressure's own maxEventLoopDelay is not used: it reads a histogram with no samples (the loop
 * was busy for the whole interval, e.g. while a big event is created) as an infinite delay and sheds
 * everything for a while.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const RESOLUTION_MS = 10;

/** What the gate reads of node's event-loop delay monitor (`monitorEventLoopDelay`, nanoseconds). */
export interface DelaySamples {
  readonly count: number;
  readonly mean: number;
  readonly max: number;
  reset(): void;
  disable(): boolean;
}

/** How many looks the recent lag covers: under-pressure looks every 100 ms, so about a second. */
const LAG_WINDOWS = 10;

export class EventLoopGate {
  readonly #delay: DelaySamples;
  readonly #maxMs: number;
  #open = false;
  /** The longest delay (ms, less the resolution) of each of the last LAG_WINDOWS looks, newest last. */
  readonly #lags: number[] = [];
  /** The longest of #lags, kept at each look so the confirms read a number. */
  #recentLag = 0;

  /** `delay`: node's monitor, sampling every 10 ms (given by tests only). */
  constructor(maxMs: number, delay?: DelaySamples) {
    this.#maxMs = maxMs;
    if (delay) this.#delay = delay;
    else {
      const monitor = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
      monitor.enable();
      this.#delay = monitor;
    }
  }

  /** From now on the loop's delay counts (call when the app is ready). */
  open(): void {
    this.#delay.reset();
    this.#open = true;
  }

  /** Whether the loop kept up since the last look (always before `open()`); starts a new window. */
  keepsUp(): boolean {
    const meanMs = this.#delay.count > 0 ? this.#delay.mean / 1e6 - RESOLUTION_MS : 0;
    if (this.#open) {
      this.#lags.push(this.#delay.count > 0 ? Math.max(0, this.#delay.max / 1e6 - RESOLUTION_MS) : 0);
      if (this.#lags.length > LAG_WINDOWS) this.#lags.shift();
      this.#recentLag = Math.max(...this.#lags);
    }
    this.#delay.reset();
    return !this.#open || meanMs <= this.#maxMs;
  }

  /**
   * The longest the loop was held in about the last second (ms; 0 before `open()`): how late a timer
   * due now may fire. The confirm refuses that much earlier, so an answer decided at its deadline
   * still leaves within the budget on a loop that lags (see portone.routes.ts).
   */
  recentLagMs(): number {
    return this.#recentLag;
  }

  close(): void {
    this.#delay.disable();
  }
}
