/**
 * How a token arrives on a WebSocket upgrade, and the sub-protocol answered.
 * Nothing here verifies a token: see verifier.ts.
 */
import { Errors } from '../errors.js';

/** Sub-protocol prefix the phoenix client puts before its `authToken` (AUTH_TOKEN_PREFIX in its constants.js). */
export const AUTH_TOKEN_PREFIX = 'base64url.bearer.phx.';

/** Sub-protocol the server echoes so that the client accepts the upgrade. */
export const PHOENIX_PROTOCOL = 'phoenix';

/** Default of auth.maxTokenBytes: tokens longer than this are refused unread. */
export const MAX_TOKEN_BYTES = 4096;

/** Split a Sec-WebSocket-Protocol header into its entries. */
function protocols(header: string): string[] {
  return header.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
}

const BASE64_NO_PAD = /^[A-Za-z0-9+/_-]*$/;

/**
 * The token a WebSocket upgrade carries, or undefined when it carries none.
 *
 * `query.token` (socket params, e.g. `new Socket(url, {params: {token}})`) wins;
 * otherwise the `base64url.bearer.phx.<b64>` sub-protocol that the phoenix
 * client sends for its `authToken` option. Despite the name, the client
 * encodes it with `btoa(token)` minus `=` padding, i.e. standard base64; both
 * alphabets are accepted, and decoding is byte-per-char as `btoa` expects.
 * @throws SandbarError SANDBAR_ERR_AUTH_INVALID when the token is given twice,
 *   is not a string, or the bearer entry is not base64 or too long.
 */
export function tokenFromUpgrade(query: Record<string, unknown>, secWebSocketProtocol: string | undefined, maxBytes: number = MAX_TOKEN_BYTES): string | undefined {
  const fromQuery = query.token;
  if (fromQuery !== undefined && fromQuery !== '') {
    // A repeated or nested `token` parameter parses to an array or object: refuse rather than pick one.
    if (typeof fromQuery !== 'string') throw Errors.AUTH_INVALID('query parameter token must be given once, as a string');
    return fromQuery;
  }
  if (secWebSocketProtocol === undefined) return undefined;
  const bearers = protocols(secWebSocketProtocol).filter((p) => p.startsWith(AUTH_TOKEN_PREFIX));
  if (bearers.length === 0) return undefined;
  if (bearers.length > 1) throw Errors.AUTH_INVALID('more than one bearer sub-protocol');
  const encoded = bearers[0]!.slice(AUTH_TOKEN_PREFIX.length);
  // Base64 of maxBytes bytes has at most this many characters; longer cannot verify.
  if (encoded.length > Math.ceil(maxBytes / 3) * 4) throw Errors.AUTH_INVALID(`token is longer than ${maxBytes} bytes (auth.maxTokenBytes)`);
  // Length 1 mod 4 cannot come from any base64 encoder.
  if (!BASE64_NO_PAD.test(encoded) || encoded.length % 4 === 1) {
    throw Errors.AUTH_INVALID('bearer sub-protocol is not base64');
  }
  return Buffer.from(encoded, 'base64').toString('latin1');
}

/**
 * The sub-protocol to echo in the upgrade response: `phoenix` when the client
 * offered it (the phoenix client offers it next to its bearer token, and a
 * WebSocket client fails the handshake if the server selects none). Never the
 * bearer entry, which would send the token back in a response header.
 * Accepts the raw header or the parsed set that `ws`'s `handleProtocols` gets.
 */
export function selectProtocol(secWebSocketProtocol: string | Iterable<string> | undefined): typeof PHOENIX_PROTOCOL | undefined {
  if (secWebSocketProtocol === undefined) return undefined;
  const offered = typeof secWebSocketProtocol === 'string' ? protocols(secWebSocketProtocol) : secWebSocketProtocol;
  for (const p of offered) if (p === PHOENIX_PROTOCOL) return PHOENIX_PROTOCOL;
  return undefined;
}
