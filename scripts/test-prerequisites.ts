/**
 * `npm test` runs this first: the tools some tests run, besides Node and the npm packages.
 *
 * - promtool checks and unit-tests the alert rules (test/prometheus-rules.test.ts),
 * - a real Prometheus scrapes a simulated drop (test/metrics-proof.test.ts),
 * - Chromium renders the drop report (services/drop/test/report.browser.test.ts),
 * - tests that pause or flush Redis run a redis-server of their own,
 * - tests and the chaos campaign that stop or restart Postgres run a cluster of their own (initdb and
 *   pg_ctl of the newest PostgreSQL under /usr/lib/postgresql, as the testkit looks for them).
 *
 * When some are missing and this runs as root on a machine with apt-get, it installs Debian's
 * packages for them (no service is started: a policy-rc.d refuses every start while apt runs).
 * Otherwise, or with DROPGATE_NO_APT=1, it prints the one command that installs them and exits 1,
 * before lint and type check spend a minute on a run that would fail anyway.
 */
import { accessSync, constants, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** A tool the tests run, where they look for it, and the Debian package that provides it. */
export interface Requirement {
  readonly tool: string;
  readonly pkg: string;
  /** The path the tests will run, or a description of where they look when it is not there. */
  where(env: NodeJS.ProcessEnv, isExecutable: (path: string) => boolean, listDir: (path: string) => string[]): { found: boolean; at: string };
}

/** `name` on `env.PATH` (a name with a slash is a path). */
function onPath(name: string, env: NodeJS.ProcessEnv, isExecutable: (path: string) => boolean): { found: boolean; at: string } {
  if (name.includes('/')) return { found: isExecutable(name), at: name };
  for (const dir of (env.PATH ?? '').split(':')) {
    if (dir && isExecutable(join(dir, name))) return { found: true, at: join(dir, name) };
  }
  return { found: false, at: `${name} on PATH` };
}

/**
 * A PostgreSQL program where the testkit's private clusters run it: the newest version's bin directory
 * under /usr/lib/postgresql (Debian's layout), else `name` on PATH.
 */
function postgresProgram(name: string, env: NodeJS.ProcessEnv, isExecutable: (path: string) => boolean, listDir: (path: string) => string[]): { found: boolean; at: string } {
  const newest = listDir('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))[0];
  if (newest === undefined) return onPath(name, env, isExecutable);
  const at = join('/usr/lib/postgresql', newest, 'bin', name);
  return { found: isExecutable(at), at };
}

/** The tools, looked for exactly where the tests look for them. */
export const REQUIREMENTS: readonly Requirement[] = [
  { tool: 'promtool', pkg: 'prometheus', where: (env, x) => onPath(env.PROMTOOL || 'promtool', env, x) },
  { tool: 'prometheus', pkg: 'prometheus', where: (env, x) => ({ found: x(env.PROMETHEUS || '/usr/bin/prometheus'), at: env.PROMETHEUS || '/usr/bin/prometheus' }) },
  // The browser test launches this path (playwright-core ships no browser).
  { tool: 'chromium', pkg: 'chromium', where: (_env, x) => ({ found: x('/usr/bin/chromium'), at: '/usr/bin/chromium' }) },
  { tool: 'redis-server', pkg: 'redis-server', where: (env, x) => onPath('redis-server', env, x) },
  { tool: 'initdb', pkg: 'postgresql', where: (env, x, ls) => postgresProgram('initdb', env, x, ls) },
  { tool: 'pg_ctl', pkg: 'postgresql', where: (env, x, ls) => postgresProgram('pg_ctl', env, x, ls) },
];

/**
 * The shell script that installs `pkgs` from Debian without starting their services: while it runs,
 * `guard` (Debian's policy-rc.d, unless one is there already) refuses every service start.
 */
export function aptScript(pkgs: readonly string[], guard = '/usr/sbin/policy-rc.d'): string {
  return [
    'set -e',
    // No service may start on install (no init system here, and a second Redis or Prometheus is not wanted).
    `guard='${guard}'; made=`,
    'if [ ! -e "$guard" ]; then printf \'#!/bin/sh\\nexit 101\\n\' > "$guard"; chmod +x "$guard"; made=1; fi',
    'trap \'if [ -n "$made" ]; then rm -f "$guard"; fi\' EXIT',
    `apt-get update -qq && apt-get install -y -qq --no-install-recommends ${pkgs.join(' ')}`,
  ].join('\n');
}

/** What this machine is and can do; injected so the decisions can be tested without installing. */
export interface Host {
  env: NodeJS.ProcessEnv;
  isRoot: boolean;
  isExecutable(path: string): boolean;
  /** The names in a directory ([] when it cannot be read). */
  listDir(path: string): string[];
  /** Runs a shell script with its output on the terminal; its exit status. */
  run(script: string): number;
  /** Prints a line for the person running the tests. */
  say(line: string): void;
}

/** The requirements missing on `host`. */
export function missingOn(host: Pick<Host, 'env' | 'isExecutable' | 'listDir'>): Requirement[] {
  return REQUIREMENTS.filter((r) => !r.where(host.env, host.isExecutable, host.listDir).found);
}

function describe(missing: readonly Requirement[], host: Pick<Host, 'env' | 'isExecutable' | 'listDir'>): string {
  return missing.map((r) => r.where(host.env, host.isExecutable, host.listDir).at).join(', ');
}

/**
 * Makes sure the tools are there, installing them when it may. Returns the exit status: 0 when
 * everything is there (now), 1 after one line saying what is missing and the command that installs it.
 */
export function ensurePrerequisites(host: Host): number {
  const missing = missingOn(host);
  if (missing.length === 0) return 0;
  const pkgs = [...new Set(missing.map((r) => r.pkg))];
  const hasApt = onPath('apt-get', host.env, host.isExecutable).found;
  const allowed = host.env.DROPGATE_NO_APT !== '1' && host.env.DROPGATE_NO_APT !== 'true';
  if (hasApt && host.isRoot && allowed) {
    host.say(`test prerequisites: ${describe(missing, host)} missing; installing Debian's ${pkgs.join(' ')} with apt-get (DROPGATE_NO_APT=1 to never do this)`);
    const status = host.run(aptScript(pkgs));
    const still = missingOn(host);
    if (status === 0 && still.length === 0) return 0;
    host.say(`test prerequisites: apt-get ${status === 0 ? `ran, but ${describe(still, host)} still missing` : `failed (exit ${status})`}; install them yourself: apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`);
    return 1;
  }
  const sudo = host.isRoot ? '' : 'sudo ';
  const command = `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  const how = hasApt ? `run: ${command}` : `no apt-get here: put them at those paths (on Debian: ${command})`;
  host.say(`test prerequisites: ${describe(missing, host)} missing; ${how}`);
  return 1;
}

/** This machine. */
export function realHost(): Host {
  return {
    env: process.env,
    isRoot: process.getuid?.() === 0,
    isExecutable(path) {
      try {
        accessSync(path, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    },
    listDir(path) {
      try {
        return readdirSync(path);
      } catch {
        return [];
      }
    },
    run(script) {
      const result = spawnSync('/bin/sh', ['-c', script], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      return result.status ?? 1;
    },
    say: (line) => console.error(line),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = ensurePrerequisites(realHost());
}
