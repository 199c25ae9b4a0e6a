/**
 * A deadline for one outbound HTTP call, which undici takes as the call's `signal`: one timer that
 * aborts the call through an EventEmitter. Each outcome the worker settles re-fetches its payment, and
 * the simulator posts a confirm per payment window: an AbortSignal per call (`AbortSignal.timeout()`,
 * `AbortSignal.any()`) cost about 30 µs of client CPU a call more (64 calls at once against a local
 * server: median 116-126 µs a call with it, 70-84 with none). undici's own headers and body timeouts
 * are cheaper still, but they tick every half second, so a 100 ms deadline would pass at up to a
 * second. Used by the PortOne client and by the simulator's outbound POST.
 */
import { EventEmitter } from 'node:events';

export class CallDeadline extends EventEmitter {
  /** Why the call was aborted (the deadline's error, or what `stop` was given); null while it was not. */
  reason: Error | null = null;
  readonly #timer: NodeJS.Timeout;

  /** `timedOut` makes the error the call fails with once `ms` pass. */
  constructor(ms: number, timedOut: () => Error) {
    super();
    this.#timer = setTimeout(() => this.stop(timedOut()), ms);
  }

  /** Aborts the call now with `error` (the first reason stays). */
  stop(error: Error): void {
    if (this.reason !== null) return;
    this.reason = error;
    this.emit('abort');
  }

  /** The call is over: the timer goes. */
  clear(): void {
    clearTimeout(this.#timer);
  }
}
