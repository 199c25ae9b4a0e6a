/**
 * The long-running npm scripts (`npm start`, `npm run api`, `worker`, `sim`) hand a stop signal to the
 * service. npm runs a script through `sh -c` and forwards SIGTERM to that shell; Debian's dash (the
 * `node:24-slim` image's sh) then dies without passing it on, and the service ran on, orphaned, until
 * it was killed: `docker stop` (compose runs `npm run api`) never let the API or the worker close
 * gracefully. Each script `exec`s node, so the process npm signals is the service itself.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '@dropgate/testkit';

const root = resolve(import.meta.dirname, '..');
const scripts = (JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('npm scripts and stop signals', () => {
  it.each(['start', 'api', 'worker', 'sim'])('npm run %s execs node (no shell left between npm and the service)', (name) => {
    expect(scripts[name]).toMatch(/^exec node \S+\.ts$/);
  });

  it('SIGTERM to `npm run sim` reaches the simulator, which closes and exits', async () => {
    // A process group of its own: whatever is left of it at the end is killed with it.
    const npm = spawn('npm', ['run', '-s', 'sim'], { cwd: root, env: { ...process.env, SIM_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    npm.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    npm.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    let service: number | null = null;
    npm.unref();
    try {
      await waitFor(async () => out.includes('listening on'), 30_000, 'the simulator listening');
      // npm's child is the service itself (with `sh -c` it was the shell, and the service its child).
      const child = spawnSync('pgrep', ['-P', String(npm.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
      expect(child).toHaveLength(1);
      service = child[0]!;
      expect(readFileSync(`/proc/${service}/cmdline`, 'utf8').split('\0')).toContain('services/portone-sim/src/main.ts');
      npm.kill('SIGTERM');
      await waitFor(async () => !alive(service!), 10_000, 'the simulator to exit after npm got SIGTERM');
    } finally {
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
      if (service !== null && alive(service)) process.kill(service, 'SIGKILL');
    }
  });
});
