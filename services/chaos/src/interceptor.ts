/**
 * A confirm_url in front of the API, for the race a forged confirm cannot win by luck: an attacker
 * who knows a payment's imp_uid (the buyer does) sends a confirm with it for another order, a made-up
 * order or a tampered amount just BEFORE PortOne's genuine confirm. The interceptor sends that
 * forged confirm first, then passes PortOne's on and returns the API's answer unchanged.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PreemptPlan {
  /** Which lie the forged confirm tells. */
  kind: 'other_order' | 'made_up_order' | 'tampered';
  /** The merchant_uid it names (for other_order and made_up_order). */
  merchantUid: string;
  /** Called with the forged request and the API's answer to it. */
  onForged(body: Record<string, unknown>, status: number, answer: string): void;
}

export interface ConfirmInterceptor {
  readonly url: string;
  /** A confirm_url that applies `plan` to the confirm PortOne sends to it. */
  route(plan: PreemptPlan): string;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startConfirmInterceptor(confirmUrl: string): Promise<ConfirmInterceptor> {
  const plans = new Map<string, PreemptPlan>();
  let next = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const raw = await readBody(req);
      const plan = plans.get((req.url ?? '').replace(/^\/confirm\//, ''));
      if (plan) {
        let genuine: Record<string, unknown> = {};
        try {
          genuine = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          // PortOne always sends JSON; nothing to forge from otherwise.
        }
        const amount = typeof genuine['amount'] === 'number' ? genuine['amount'] : 0;
        const forged = plan.kind === 'tampered'
          ? { ...genuine, amount: Math.max(1, amount - 1_000) }
          : { ...genuine, merchant_uid: plan.merchantUid };
        try {
          const r = await fetch(confirmUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(forged), signal: AbortSignal.timeout(4_000) });
          plan.onForged(forged, r.status, await r.text());
        } catch (error) {
          plan.onForged(forged, 0, (error as Error).message);
        }
      }
      try {
        const r = await fetch(confirmUrl, { method: 'POST', headers: { 'content-type': req.headers['content-type'] ?? 'application/json' }, body: raw, signal: AbortSignal.timeout(10_000) });
        const text = await r.text();
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' }).end(text);
      } catch {
        res.destroy();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    route(plan) {
      const id = String(next++);
      plans.set(id, plan);
      return `${url}/confirm/${id}`;
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
