/**
 * The real CLI (`node services/drop/src/main.ts`, what `npm run drop` runs) as a child process: a
 * small drop exits 0 with the report on stdout and the HTML file written; `--json` prints a summary a
 * machine can read; bad usage exits 2 naming the option.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@dropgate/testkit';
import { TEST_ENV } from './helpers.ts';
import { compileCacheEnv } from '@dropgate/config';

const SMALL = ['--seats', '60', '--pool', '30', '--buyers', '150', '--concurrency', '30', '--max-per-order', '3', '--hold-ttl', '5', '--buyer-delay-ms', '300'];

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('drop_cli');
  dir = await mkdtemp(join(tmpdir(), 'dropgate-cli-'));
});

afterAll(async () => {
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const name = new URL(db.url).pathname.slice(1);
  const child = spawn(process.execPath, ['services/drop/src/main.ts', '--database', name, ...args], {
    env: { PATH: process.env.PATH ?? '', ...compileCacheEnv(), ...TEST_ENV, DATABASE_URL: db.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('npm run drop', { timeout: 90_000 }, () => {
  it('runs a drop, prints the report, writes the HTML report and exits 0', async () => {
    const report = join(dir, 'nested', 'drop.html');
    const run = await cli([...SMALL, '--report', report]);
    expect(run.stderr).not.toMatch(/Error|FAIL/);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^dropgate drop drop-\d{8}-\d{6}-[0-9a-f]{4}: 150 buyers/);
    expect(run.stdout).toMatch(/Capacity\s+90 \(60 seats \+ 30 pool places\)/);
    expect(run.stdout).toMatch(/Confirm latency p50 [\d.,]+ ms · p90 [\d.,]+ ms · p99 [\d.,]+ ms · max [\d.,]+ ms/);
    for (const n of [1, 2, 3, 4]) expect(run.stdout).toMatch(new RegExp(`ok   ${n}\\. `));
    expect(run.stdout).toContain('All invariants hold.');
    expect(run.stdout).toContain(`Report: ${report}`);
    // Progress went to stderr as plain lines (not a terminal).
    expect(run.stderr).toMatch(/drop \[\s*[\d.]+s\] buyers \d+\/150/);
    expect(existsSync(report)).toBe(true);
    const html = readFileSync(report, 'utf8');
    for (const chart of ['latency', 'throughput', 'inventory', 'outcomes']) expect(html).toContain(`<svg data-chart="${chart}"`);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
  });

  it('--json prints a machine-readable summary', async () => {
    const run = await cli([...SMALL, '--failed', '0', '--abandoned', '0', '--no-report', '--json', '--quiet']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    const summary = JSON.parse(run.stdout);
    expect(summary.ok).toBe(true);
    expect(summary.invariants.map((r: any) => [r.id, r.ok])).toEqual([[1, true], [2, true], [3, true], [4, true]]);
    expect(summary.inventory.capacity).toBe(90);
    expect(summary.confirms.total).toBe(summary.confirms.approved + summary.confirms.refused);
    expect(summary.confirms.latency_ms.n).toBe(summary.confirms.total);
    expect(summary.report_path).toBeNull();
  });

  it('refuses bad usage with exit 2, naming the option', async () => {
    const bad = await cli(['--failed', '1.5']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--failed must be a number from 0 to 1');
    const unknown = await cli(['--sellers', '3']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--sellers'");
  });

  it('--help lists the options with their defaults', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--buyers <n>\s+buyers \[6000\]/);
    expect(help.stdout).toMatch(/--webhook-loss <0\.\.1>\s+probability a webhook is lost \[0\.05\]/);
  });
});
