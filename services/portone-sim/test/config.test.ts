/**
 * `npm run sim` start-up: SIM_PORT and HOST are read once, and an invalid value stops start-up with
 * a message naming the variable.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readSimConfig, SimConfigError } from '../src/index.ts';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

/**
 * Runs main.ts with `env`. When its output matches `ready`, `onReady` runs with the match and the
 * process is stopped; otherwise the process is left to exit on its own.
 */
async function runMain(
  env: Record<string, string>,
  ready?: { pattern: RegExp; onReady: (match: RegExpMatchArray) => Promise<void> },
): Promise<{ output: string; code: number | null; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, [MAIN], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let readyWork: Promise<void> | undefined;
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    const match = ready === undefined || readyWork !== undefined ? null : output.match(ready.pattern);
    if (match && ready) readyWork = ready.onReady(match).finally(() => child.kill('SIGTERM'));
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  await readyWork;
  return { output, code, signal };
}

describe('readSimConfig', () => {
  it('defaults to 127.0.0.1:3100', () => {
    expect(readSimConfig({})).toEqual({ port: 3100, host: '127.0.0.1' });
    expect(readSimConfig({ SIM_PORT: '4100', HOST: '0.0.0.0' })).toEqual({ port: 4100, host: '0.0.0.0' });
  });

  it('refuses an invalid SIM_PORT, naming the variable', () => {
    for (const bad of ['abc', '-1', '70000', '31.5', ' 80']) {
      let caught: unknown;
      try {
        readSimConfig({ SIM_PORT: bad });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SimConfigError);
      expect((caught as SimConfigError).variable).toBe('SIM_PORT');
      expect((caught as SimConfigError).message).toContain('SIM_PORT');
    }
  });
});

describe('main', () => {
  it('stops start-up on an invalid SIM_PORT with a message naming it', async () => {
    const { output, code } = await runMain({ SIM_PORT: 'not-a-port' });
    expect(code).toBe(1);
    expect(output).toContain('SIM_PORT');
    expect(output).toContain('not-a-port');
  });

  it('listens on SIM_PORT and serves PortOne REST, then exits cleanly on SIGTERM', async () => {
    let tokenCode: unknown;
    // Port 0 lets the OS choose, so parallel test runs never collide.
    const { code } = await runMain(
      { SIM_PORT: '0', HOST: '127.0.0.1' },
      {
        pattern: /listening on (http:\/\/127\.0\.0\.1:\d+)/,
        onReady: async (match) => {
          const res = await fetch(`${match[1]}/users/getToken`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ imp_key: 'k', imp_secret: 's' }),
          });
          tokenCode = ((await res.json()) as { code: unknown }).code;
        },
      },
    );
    expect(tokenCode).toBe(0);
    expect(code).toBe(0);
  });
});
