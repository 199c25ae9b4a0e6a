/**
 * PortOne's V1 REST API as the benchmark's worker sees it, in a process of its own (PortOne is remote:
 * its CPU is not dropgate's). The bench registers the payments of a scenario's confirm bodies
 * (`POST /bench/payments` with `[imp_uid, merchant_uid, amount]` rows) before driving them, so the
 * worker's verification of each approved confirm finds a genuine payment the buyer is still paying
 * (`ready`), as at a real drop, and keeps the hold. Without it the verifications went to a closed
 * port: each one retried its HTTP attempts, failed and was retried later, none of a real approval's
 * work. Prints its URL on stdout once listening.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

const payments = new Map<string, { merchantUid: string; amount: number }>();

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

const paymentOf = (impUid: string, p: { merchantUid: string; amount: number }) => ({
  imp_uid: impUid, merchant_uid: p.merchantUid, amount: p.amount, cancel_amount: 0, currency: 'KRW', status: 'ready', paid_at: 0, failed_at: 0, cancelled_at: 0,
});

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'POST' && url === '/users/getToken') {
    req.resume();
    const now = Math.floor(Date.now() / 1000);
    return answer(res, 200, { code: 0, message: null, response: { access_token: 'bench-token', expired_at: now + 3600, now } });
  }
  if (req.method === 'POST' && url === '/bench/payments') {
    void readBody(req).then((text) => {
      const rows = JSON.parse(text) as [string, string, number][];
      for (const [impUid, merchantUid, amount] of rows) payments.set(impUid, { merchantUid, amount });
      answer(res, 200, { count: payments.size });
    }, () => answer(res, 400, { code: -1, message: 'unreadable body' }));
    return;
  }
  const match = req.method === 'GET' ? /^\/payments\/([^/?]+)$/.exec(url) : null;
  req.resume();
  if (req.method === 'GET' && url.startsWith('/payments?')) {
    const found = new URLSearchParams(url.slice('/payments?'.length)).getAll('imp_uid[]').flatMap((imp) => {
      const p = payments.get(imp);
      return p ? [paymentOf(imp, p)] : [];
    });
    if (found.length === 0) return answer(res, 404, { code: 1, message: '존재하지 않는 결제정보입니다.', response: null });
    return answer(res, 200, { code: 0, message: null, response: found });
  }
  if (match) {
    const impUid = decodeURIComponent(match[1]!);
    const p = payments.get(impUid);
    if (!p) return answer(res, 404, { code: -1, message: '존재하지 않는 결제정보입니다.', response: null });
    return answer(res, 200, { code: 0, message: null, response: paymentOf(impUid, p) });
  }
  return answer(res, 404, { code: -1, message: 'not found', response: null });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const address = server.address();
  console.log(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
