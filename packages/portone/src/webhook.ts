/**
 * PortOne V2 signatures (Standard Webhooks), checked with `@portone/server-sdk`'s `Webhook.verify` on
 * the raw body exactly as it arrived: parsing and re-serialising the JSON first would break the
 * signature (and would let a re-serialised body through if we signed our own form of it).
 *
 * Several secrets may be active while PortOne rotates them: the request passes with any one of them.
 * A timestamp outside the SDK's 5-minute tolerance, or missing headers, fails for every secret alike.
 */
// The subpath is the same module as the package root's `Webhook` namespace, without loading the whole
// generated API (about 570 modules, 130 ms of start-up CPU per process).
import * as Webhook from '@portone/server-sdk/webhook';

export type WebhookVerification =
  | { ok: true; payload: unknown }
  | { ok: false; reason: 'NO_SECRET' | 'MISSING_REQUIRED_HEADERS' | 'NO_MATCHING_SIGNATURE' | 'INVALID_SIGNATURE' | 'TIMESTAMP_TOO_OLD' | 'TIMESTAMP_TOO_NEW' | 'NOT_JSON' };

/** The signature headers, as a request carries them (a repeated header is refused by the SDK). */
export type WebhookHeaders = Record<string, string | string[] | undefined>;

/**
 * Verifies `rawBody` against `headers` with each of `secrets` in turn.
 * @returns the parsed payload when one secret signed it; otherwise why not. Never throws for a bad request.
 */
export async function verifyWebhook(secrets: readonly string[], rawBody: string, headers: WebhookHeaders): Promise<WebhookVerification> {
  if (secrets.length === 0) return { ok: false, reason: 'NO_SECRET' };
  const only = {
    'webhook-id': headers['webhook-id'],
    'webhook-timestamp': headers['webhook-timestamp'],
    'webhook-signature': headers['webhook-signature'],
  };
  let reason: Exclude<WebhookVerification, { ok: true }>['reason'] = 'NO_MATCHING_SIGNATURE';
  for (const secret of secrets) {
    try {
      return { ok: true, payload: await Webhook.verify(secret, rawBody, only) };
    } catch (error) {
      if (error instanceof Webhook.WebhookVerificationError) {
        reason = error.reason;
        // The headers or the time are wrong whatever the secret: no need to try the others.
        if (error.reason !== 'NO_MATCHING_SIGNATURE') return { ok: false, reason };
        continue;
      }
      // Signed by a secret of ours, but not JSON (JSON.parse inside verify), or an input the SDK refuses.
      if (error instanceof SyntaxError) return { ok: false, reason: 'NOT_JSON' };
      return { ok: false, reason: 'INVALID_SIGNATURE' };
    }
  }
  return { ok: false, reason };
}
