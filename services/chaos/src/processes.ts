/**
 * The API and the worker as child processes of the campaign, so a fault can SIGKILL the worker and
 * so a process that dies by itself (a crash the campaign did not cause) is seen, reported as a
 * violation, and started again instead of taking the campaign down with it.
 *
 * Starting is retried until the process is ready, as a supervisor (systemd, Kubernetes) would: a
 * process that refuses to start while a dependency is down (exit 2 "Postgres unreachable") is not a
 * crash. A process that dies after it was ready is. Every start and kill goes through one queue, so
 * two never race into two processes fighting for one port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';

/** A process that exited without the campaign asking it to, after it had been ready. */
export interface ProcessCrash {
  name: string;
  /** epoch ms */
  at: number;
  code: number | null;
  signal: string | null;
  /** Its last lines of output. */
  tail: string[];
}

export interface SupervisedOptions {
  name: string;
  /** Script path (absolute), run with this Node. */
  script: string;
  env: Record<string, string>;
  /** Where its stdout and stderr go (appended). */
  logFile: string;
  /** Whether the process serves yet (polled while it starts). */
  ready: () => Promise<boolean>;
  onCrash: (crash: ProcessCrash) => void;
}

const TAIL_LINES = 40;
const START_TIMEOUT_MS = 90_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One child process kept running; `kill()` stops it on purpose, any other exit after start is a crash. */
export class Supervised {
  readonly #opts: SupervisedOptions;
  readonly #log: WriteStream;
  #child: ChildProcess | null = null;
  #ready = false;
  #tail: string[] = [];
  #expectExit = false;
  #closed = false;
  /** Starts and kills, one after the other. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: SupervisedOptions) {
    this.#opts = opts;
    this.#log = createWriteStream(opts.logFile, { flags: 'a' });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Whether it runs and was ready. */
  get running(): boolean {
    return this.#child !== null && this.#ready;
  }

  /** Starts it unless it runs; resolves once it is ready (starting again while it exits early). */
  start(): Promise<void> {
    return this.#serial(async () => {
      if (this.running || this.#closed) return;
      const deadline = Date.now() + START_TIMEOUT_MS;
      for (let attempt = 1; ; attempt++) {
        const child = this.#spawn();
        if (await this.#waitReady(child, deadline)) {
          this.#ready = true;
          return;
        }
        if (this.#child === child) {
          // Still starting at the deadline: give up on it.
          this.#expectExit = true;
          await this.#stop(child, 'SIGKILL');
          this.#expectExit = false;
        }
        if (Date.now() > deadline || this.#closed) {
          throw new Error(`${this.#opts.name} did not become ready in ${START_TIMEOUT_MS / 1000} s; last output:\n${this.#tail.slice(-10).join('\n')}`);
        }
        await sleep(Math.min(2_000, 200 * attempt));
      }
    });
  }

  /** Kills it on purpose (SIGKILL: no clean-up, as a crash or an OOM kill would). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.#serial(async () => {
      const child = this.#child;
      if (!child) return;
      this.#expectExit = true;
      await this.#stop(child, signal);
      this.#expectExit = false;
    });
  }

  /**
   * Stops it (SIGSTOP) for `ms`, then lets it go on (SIGCONT): a process frozen as a long garbage
   * collection, a paused VM or a starved container freezes one. Its connections stay open and its timers
   * fire late, all at once, when it goes on. `onStopped` is called once the signal is sent.
   * @returns false when it was not running.
   */
  stall(ms: number, onStopped?: () => void): Promise<boolean> {
    return this.#serial(async () => {
      const child = this.#child;
      if (!child || !this.#ready) return false;
      child.kill('SIGSTOP');
      onStopped?.();
      this.#log.write(`--- ${new Date().toISOString()} ${this.#opts.name} stopped (SIGSTOP) for ${ms} ms\n`);
      try {
        await sleep(ms);
      } finally {
        child.kill('SIGCONT');
        this.#log.write(`--- ${new Date().toISOString()} ${this.#opts.name} continued (SIGCONT)\n`);
      }
      return true;
    });
  }

  /** Waits for starts and kills under way (a restart after a crash). */
  async settled(): Promise<void> {
    await this.#queue;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    const child = this.#child;
    if (child) {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await this.#stop(child, 'SIGTERM');
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.#log.end(resolve));
  }

  #spawn(): ChildProcess {
    const child = spawn(process.execPath, [this.#opts.script], { env: this.#opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#ready = false;
    this.#log.write(`--- ${new Date().toISOString()} ${this.#opts.name} started (pid ${child.pid})\n`);
    const keep = (chunk: Buffer) => {
      this.#log.write(chunk);
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.#tail.push(line.slice(0, 400));
      if (this.#tail.length > TAIL_LINES) this.#tail.splice(0, this.#tail.length - TAIL_LINES);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('exit', (code, signal) => {
      this.#log.write(`--- ${new Date().toISOString()} ${this.#opts.name} exited (code ${code}, signal ${signal})\n`);
      if (this.#child !== child) return;
      const wasReady = this.#ready;
      this.#child = null;
      this.#ready = false;
      // Killed on purpose, closing, or it never got ready (start() tries again): not a crash.
      if (this.#expectExit || this.#closed || !wasReady) return;
      this.#opts.onCrash({ name: this.#opts.name, at: Date.now(), code, signal, tail: [...this.#tail] });
      void this.start().catch(() => undefined);
    });
    return child;
  }

  /** Polls readiness; false when the child exited first (or the deadline passed). */
  async #waitReady(child: ChildProcess, deadline: number): Promise<boolean> {
    for (;;) {
      if (this.#child !== child) return false;
      if (await this.#opts.ready().catch(() => false)) return this.#child === child;
      if (Date.now() > deadline) return false;
      await sleep(100);
    }
  }

  async #stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }
}
