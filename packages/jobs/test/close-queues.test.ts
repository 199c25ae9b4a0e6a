/**
 * Closing the queues while BullMQ's start-up check of Redis is still waiting, then disconnecting the
 * client, must not end the process: before, the check failed after the close had dropped the queue's
 * error listeners, and the unheard 'error' killed `npm start` on its way out now and then.
 * A private Redis holds every command (CLIENT PAUSE), so the check waits for certain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startPrivateRedis, type PrivateRedis } from '@dropgate/testkit';
import { QUEUE_START_WAIT_MS, closeQueues, createQueues } from '../src/index.ts';

let server: PrivateRedis;
beforeAll(async () => { server = await startPrivateRedis(); });
afterAll(async () => { await server?.stop(); });

describe('closeQueues', () => {
  it('closes started queues at once', async () => {
    const client = new Redis(server.url, { maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    const queues = createQueues(client, '{close-test-2}');
    await Promise.all(Object.values(queues).map((q) => q.waitUntilReady()));
    const started = Date.now();
    await closeQueues(queues);
    expect(Date.now() - started).toBeLessThan(QUEUE_START_WAIT_MS);
    client.disconnect();
  });

  it('closes queues whose start is still waiting on Redis without an unheard error', async () => {
    const unheard: unknown[] = [];
    const note = (error: unknown) => { unheard.push(error); };
    process.on('unhandledRejection', note);
    process.on('uncaughtException', note);
    const control = new Redis(server.url);
    try {
      // The client is connected; then Redis holds every command, so BullMQ's check (an INFO) waits.
      const client = new Redis(server.url, { maxRetriesPerRequest: null });
      client.on('error', () => undefined);
      await client.ping();
      const pausedFor = QUEUE_START_WAIT_MS + 2_000;
      await control.call('CLIENT', 'PAUSE', String(pausedFor), 'ALL');
      const queues = createQueues(client, '{close-test}');
      const started = Date.now();
      await closeQueues(queues);
      // It did not wait for Redis to answer: the start-up checks were still waiting.
      expect(Date.now() - started).toBeLessThan(pausedFor - 500);
      client.disconnect();
      // Whatever the checks do now happens when the client has flushed its commands: let it run.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unheard).toEqual([]);
    } finally {
      process.off('unhandledRejection', note);
      process.off('uncaughtException', note);
      control.disconnect();
    }
  });
});
