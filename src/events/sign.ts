/**
 * Webhook signatures: `sandbar-signature: t=<unix ms>,v1=<hex>` where v1 is
 * HMAC-SHA256(webhooks.secret, `${t}.${body}`). The timestamp is signed with
 * the body so a receiver can refuse a replayed request (docs/api.md shows the
 * check); compare in constant time.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'sandbar-signature';

export function sign(secret: string, body: string, t: number): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/**
 * A receiver's check (used by our tests and shown in docs/api.md): the
 * signature matches and is at most `toleranceMs` old.
 */
export function verify(secret: string, body: string, header: string | undefined, now: number, toleranceMs = 300_000): boolean {
  if (!header) return false;
  const m = /^t=(\d{1,16}),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(now - t) > toleranceMs) return false;
  const want = Buffer.from(sign(secret, body, t).slice(-64), 'hex');
  return timingSafeEqual(want, Buffer.from(m[2]!, 'hex'));
}
