/**
 * API keys (api.keys): which key is presented, found in constant time.
 *
 * Both the presented key and each configured one are hashed (SHA-256) and
 * compared with timingSafeEqual, against every configured key whatever the
 * outcome: neither the position of the first differing byte, nor the length,
 * nor which key matched shows in the time taken.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { parseApiKey, type ApiKeySpec, type ApiOperation } from '../config/integration-rules.js';

interface Entry { readonly spec: ApiKeySpec; readonly digest: Buffer }

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class ApiKeys {
  private readonly entries: Entry[];

  /** `entries` as in api.keys (validated at load). */
  constructor(entries: readonly string[] | undefined) {
    this.entries = (entries ?? []).map((e) => {
      const spec = parseApiKey(e);
      if (typeof spec === 'string') throw new Error(`api.keys: expected ${spec}`);
      return { spec, digest: digest(spec.key) };
    });
  }

  /** No key configured: every request is allowed (a loopback-only API; config refuses it elsewhere). */
  get open(): boolean { return this.entries.length === 0; }

  /** The key presented (the text after "Bearer "), or null when it is none of ours. */
  find(presented: string): ApiKeySpec | null {
    const d = digest(presented);
    let found: ApiKeySpec | null = null;
    for (const e of this.entries) if (timingSafeEqual(d, e.digest) && found === null) found = e.spec;
    return found;
  }

  static allows(spec: ApiKeySpec, op: ApiOperation): boolean {
    return spec.ops.has(op);
  }
}
