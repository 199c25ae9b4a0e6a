/**
 * The check `npm test` runs first (scripts/test-prerequisites.ts): on a fresh machine it installs
 * what the tests run (promtool, Prometheus, Chromium, redis-server) when it may, and otherwise says in
 * one line which command does. The decisions are tested with a stand-in machine (nothing is
 * installed); the script itself runs with a PATH that lacks the tools, and its apt script runs
 * against a fake apt-get.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { aptScript, ensurePrerequisites, missingOn, REQUIREMENTS, type Host } from '../scripts/test-prerequisites.ts';

const root = resolve(import.meta.dirname, '..');
const NODE = join(root, 'node_modules', '.bin', 'node');
const SCRIPT = join(root, 'scripts', 'test-prerequisites.ts');
const tmp = mkdtempSync(join(tmpdir(), 'dropgate-prereq-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A machine with `present` executables; `install` (run by apt) adds more. */
function fakeHost(opts: { present: string[]; root?: boolean; env?: NodeJS.ProcessEnv; aptStatus?: number; installs?: string[] }) {
  const files = new Set(opts.present);
  const scripts: string[] = [];
  const lines: string[] = [];
  const host: Host = {
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', ...opts.env },
    isRoot: opts.root ?? true,
    isExecutable: (path) => files.has(path),
    listDir: (dir) => [...new Set([...files].filter((f) => f.startsWith(`${dir}/`)).map((f) => f.slice(dir.length + 1).split('/')[0]!))],
    run(script) {
      scripts.push(script);
      for (const f of opts.installs ?? []) files.add(f);
      return opts.aptStatus ?? 0;
    },
    say: (line) => lines.push(line),
  };
  return { host, scripts, lines };
}

const POSTGRES = ['/usr/lib/postgresql/15/bin/initdb', '/usr/lib/postgresql/15/bin/pg_ctl'];
const EVERYTHING = ['/usr/bin/promtool', '/usr/bin/prometheus', '/usr/bin/chromium', '/usr/bin/redis-server', '/usr/bin/apt-get', ...POSTGRES];
const ONLY_APT_AND_REDIS = ['/usr/bin/apt-get', '/usr/bin/redis-server', ...POSTGRES];

describe('test prerequisites', () => {
  it('does nothing when every tool is where the tests look for it', () => {
    const { host, scripts, lines } = fakeHost({ present: EVERYTHING });
    expect(ensurePrerequisites(host)).toBe(0);
    expect(scripts).toEqual([]);
    expect(lines).toEqual([]);
  });

  it('looks where the tests look: PROMTOOL and PROMETHEUS override, Chromium at /usr/bin/chromium', () => {
    const { host } = fakeHost({ present: ['/opt/p/promtool', '/opt/p/prometheus', '/usr/bin/chromium', '/usr/bin/redis-server', ...POSTGRES], env: { PROMTOOL: '/opt/p/promtool', PROMETHEUS: '/opt/p/prometheus' } });
    expect(missingOn(host)).toEqual([]);
    const without = fakeHost({ present: ['/usr/local/bin/chromium', '/usr/bin/promtool', '/usr/bin/prometheus', '/usr/bin/redis-server', ...POSTGRES] });
    expect(missingOn(without.host).map((r) => r.tool)).toEqual(['chromium']);
    expect(REQUIREMENTS.map((r) => r.tool)).toEqual(['promtool', 'prometheus', 'chromium', 'redis-server', 'initdb', 'pg_ctl']);
  });

  it('initdb and pg_ctl are looked for where the private Postgres clusters run them: the newest /usr/lib/postgresql/<version>/bin, else PATH', () => {
    const base = ['/usr/bin/promtool', '/usr/bin/prometheus', '/usr/bin/chromium', '/usr/bin/redis-server', '/usr/bin/apt-get'];
    // The newest version decides: a 13 beside a 16 without its programs is not enough.
    const older = fakeHost({ present: [...base, '/usr/lib/postgresql/13/bin/initdb', '/usr/lib/postgresql/13/bin/pg_ctl', '/usr/lib/postgresql/16/lib/x'], env: { DROPGATE_NO_APT: '1' } });
    expect(missingOn(older.host).map((r) => r.tool)).toEqual(['initdb', 'pg_ctl']);
    expect(ensurePrerequisites(older.host)).toBe(1);
    expect(older.lines).toEqual([expect.stringMatching(/\/usr\/lib\/postgresql\/16\/bin\/initdb, \/usr\/lib\/postgresql\/16\/bin\/pg_ctl missing; run: .*install -y --no-install-recommends postgresql$/)]);
    // No /usr/lib/postgresql: on PATH will do.
    expect(missingOn(fakeHost({ present: [...base, '/usr/bin/initdb', '/usr/bin/pg_ctl'] }).host)).toEqual([]);
  });

  it('as root with apt-get, installs the missing packages once, with no service started', () => {
    const { host, scripts, lines } = fakeHost({ present: ONLY_APT_AND_REDIS, installs: ['/usr/bin/promtool', '/usr/bin/prometheus', '/usr/bin/chromium'] });
    expect(ensurePrerequisites(host)).toBe(0);
    expect(scripts).toHaveLength(1);
    expect(scripts[0]).toContain('apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus chromium');
    expect(scripts[0]).toContain('policy-rc.d');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('DROPGATE_NO_APT=1');
  });

  it('with DROPGATE_NO_APT=1, installs nothing and names the one command in one line', () => {
    const { host, scripts, lines } = fakeHost({ present: ONLY_APT_AND_REDIS, env: { DROPGATE_NO_APT: '1' } });
    expect(ensurePrerequisites(host)).toBe(1);
    expect(scripts).toEqual([]);
    expect(lines).toEqual([expect.stringContaining('run: apt-get update && apt-get install -y --no-install-recommends prometheus chromium')]);
  });

  it('not root: names the command with sudo, installs nothing', () => {
    const { host, scripts, lines } = fakeHost({ present: ['/usr/bin/apt-get', '/usr/bin/promtool', '/usr/bin/prometheus', '/usr/bin/chromium', ...POSTGRES], root: false });
    expect(ensurePrerequisites(host)).toBe(1);
    expect(scripts).toEqual([]);
    expect(lines).toEqual([expect.stringContaining('sudo apt-get install -y --no-install-recommends redis-server')]);
  });

  it('apt-get failing, or not providing the tool, is exit 1 with the command to run', () => {
    const failed = fakeHost({ present: ONLY_APT_AND_REDIS, aptStatus: 100 });
    expect(ensurePrerequisites(failed.host)).toBe(1);
    expect(failed.lines.at(-1)).toMatch(/failed \(exit 100\).*apt-get install -y --no-install-recommends prometheus chromium/);
    const partial = fakeHost({ present: ONLY_APT_AND_REDIS, installs: ['/usr/bin/promtool', '/usr/bin/prometheus'] });
    expect(ensurePrerequisites(partial.host)).toBe(1);
    expect(partial.lines.at(-1)).toContain('/usr/bin/chromium still missing');
  });

  it('the apt script refuses service starts while apt runs, and removes only the guard it made', () => {
    const bin = join(tmp, 'bin');
    const log = join(tmp, 'apt.log');
    const guard = join(tmp, 'policy-rc.d');
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin, { recursive: true });
    // The fake apt-get records its arguments and what a service start would get from the guard.
    writeFileSync(join(bin, 'apt-get'), `#!/bin/sh\n"${guard}" >/dev/null 2>&1; echo "$* guard=$?" >> "${log}"\n`);
    chmodSync(join(bin, 'apt-get'), 0o755);
    const run = () => spawnSync('/bin/sh', ['-c', aptScript(['prometheus', 'chromium'], guard)], { env: { PATH: `${bin}:/usr/bin:/bin` }, encoding: 'utf8' });
    expect(run().status).toBe(0);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual([
      'update -qq guard=101',
      'install -y -qq --no-install-recommends prometheus chromium guard=101',
    ]);
    expect(existsSync(guard)).toBe(false);
    // A policy-rc.d that was there before stays.
    writeFileSync(guard, '#!/bin/sh\nexit 101\n');
    chmodSync(guard, 0o755);
    expect(run().status).toBe(0);
    expect(existsSync(guard)).toBe(true);
  });

  it('the script, run with a PATH that lacks the tools, prints one line naming the command and exits 1', () => {
    const result = spawnSync(NODE, [SCRIPT], { env: { PATH: join(tmp, 'empty'), PROMETHEUS: join(tmp, 'no-prometheus'), DROPGATE_NO_APT: '1' }, encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('promtool');
    expect(lines[0]).toMatch(/apt-get install -y --no-install-recommends prometheus( chromium)? redis-server\)/);
  });

  it('the script finds the tools on this machine (npm test ran it before the tests)', () => {
    const result = spawnSync(NODE, [SCRIPT], { env: { ...process.env, DROPGATE_NO_APT: '1' }, encoding: 'utf8', timeout: 30_000 });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
