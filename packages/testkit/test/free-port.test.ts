/**
 * freePort draws ports a test will listen on later: one process never gets the same port twice, nor
 * the port beside one it got (servers such as two workers' metrics take a port and the next), even
 * while nothing listens on them yet. A test drawing PORT and then WORKER_METRICS_PORT got the same
 * port twice once, and its API could not listen.
 */
import { describe, expect, it } from 'vitest';
import { freePort } from '@dropgate/testkit';

describe('freePort', () => {
  it('hands out no port twice, nor one beside a port it handed out, before anything listens', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 100; i++) ports.push(await freePort());
    const sorted = [...ports].sort((a, b) => a - b);
    const gaps = sorted.slice(1).map((p, i) => p - sorted[i]!);
    expect(Math.min(...gaps)).toBeGreaterThan(1);
  });
});
