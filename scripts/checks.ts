/**
 * `npm test`'s static checks: `npm run lint` and `npm run typecheck` side by side (each is mostly one
 * core's work), each one's output printed whole when it ends. Exits non-zero if either fails.
 */
import { spawn } from 'node:child_process';

function run(script: string): Promise<{ script: string; code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('npm', ['run', '--silent', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => resolve({ script, code: code ?? 1, output }));
  });
}

const started = performance.now();
const results = await Promise.all(['lint', 'typecheck'].map(run));
for (const r of results) {
  process.stdout.write(`\n> npm run ${r.script}: ${r.code === 0 ? 'ok' : `failed (exit ${r.code})`}\n${r.output}`);
}
process.stdout.write(`\nchecks took ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
process.exit(results.every((r) => r.code === 0) ? 0 : 1);
