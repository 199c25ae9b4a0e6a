/**
 * The API and the worker as child processes of the campaign, so a fault can SIGKILL the worker and
 * so a process that dies by itself (a crash the campaign did not cause) is seen, reported as a
 * violation, and started again instead of taking the campaign down with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';

/** A process that exited without the campaign asking it to. */
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
  /** Resolves once the process is ready to serve (polled after each start). */
  ready: () => Promise<boolean>;
  onCrash: (crash: ProcessCrash) => void;
}

const TAIL_LINES = 40;

/** One child process kept running; `kill()` stops it on purpose, any other exit is a crash. */
export class Supervised {
  readonly #opts: SupervisedOptions;
  readonly #log: WriteStream;
  #child: ChildProcess | null = null;
  #tail: string[] = [];
  #expectExit = false;
  #closed = false;
  #restarting: Promise<void> | null = null;

  constructor(opts: SupervisedOptions) {
    this.#opts = opts;
    this.#log = createWriteStream(opts.logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the process and waits until it is ready (at most 60 s). */
  async start(): Promise<void> {
    this.#expectExit = false;
    const child = spawn(process.execPath, [this.#opts.script], { env: this.#opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
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
      if (this.#child === child) this.#child = null;
      if (this.#expectExit || this.#closed) return;
      this.#opts.onCrash({ name: this.#opts.name, at: Date.now(), code, signal, tail: [...this.#tail] });
      // Keep the campaign going: start it again (the crash is reported as a violation).
      this.#restarting ??= new Promise<void>((r) => setTimeout(r, 200))
        .then(() => (this.#closed ? undefined : this.start()))
        .catch(() => undefined)
        .finally(() => { this.#restarting = null; });
    });
    const started = Date.now();
    for (;;) {
      if (this.#child !== child) throw new Error(`${this.#opts.name} exited while starting; last output:\n${this.#tail.slice(-10).join('\n')}`);
      if (await this.#opts.ready().catch(() => false)) return;
      if (Date.now() - started > 60_000) throw new Error(`${this.#opts.name} was not ready after 60 s; last output:\n${this.#tail.slice(-10).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Kills it on purpose (SIGKILL: no clean-up, as a crash or an OOM kill would). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#expectExit = true;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  /** Whether it runs now (not killed, not crashed and waiting for its restart). */
  get running(): boolean {
    return this.#child !== null;
  }

  /** Waits for a restart after a crash, if one is under way. */
  async settled(): Promise<void> {
    await this.#restarting;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#restarting;
    const child = this.#child;
    if (child) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => { clearTimeout(timer); resolve(); });
        child.kill('SIGTERM');
      });
    }
    await new Promise<void>((resolve) => this.#log.end(resolve));
  }
}
