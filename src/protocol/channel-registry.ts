/**
 * Channels by topic prefix: `echo:*` now, `user:*` and `room:*` plug in the
 * same way. A handler is shared by every session (no per-session closures);
 * per-channel state lives on the JoinedChannel object the session holds.
 */
import type { SessionActor } from '../actors/session.js';

/** One topic joined by one session. */
export interface JoinedChannel {
  readonly topic: string;
  /** Text after the first ':' of the topic (the user or room id). */
  readonly id: string;
  readonly joinRef: string | null;
  readonly handler: ChannelHandler;
  /** false until the handler accepted the join (joins may finish later, after a NATS round trip). */
  joined: boolean;
  /** Handler-owned state. */
  state: unknown;
  /** What the join was granted beyond joining (room channels: auth/room-authorizer.ts PUBLISH_*); 0 elsewhere. */
  grant: number;
}

export interface ChannelHandler {
  /**
   * A phx_join. Accept with `session.joinOk(ch, ref, response)` or refuse with
   * `session.joinError(ch, ref, err)`, now or later; throwing a SandbarError
   * refuses at once. Any other throw crashes the session.
   */
  join(session: SessionActor, ch: JoinedChannel, params: unknown, ref: string | null): void;
  /** A push on a joined topic. Reply with `session.reply(...)`; throwing a SandbarError gives an error reply. */
  handleIn(session: SessionActor, ch: JoinedChannel, event: string, payload: unknown, ref: string | null): void;
  /** The channel ends: phx_leave, a replacing join, or the session stopping. Must not throw. */
  leave(session: SessionActor, ch: JoinedChannel, reason: 'leave' | 'replaced' | 'closed'): void;
}

export class ChannelRegistry {
  private readonly byKind = new Map<string, ChannelHandler>();
  register(kind: string, handler: ChannelHandler): void {
    if (this.byKind.has(kind)) throw new Error(`channel kind ${kind} registered twice`);
    this.byKind.set(kind, handler);
  }
  /** The handler for a topic `<kind>:<id>`, or undefined when no channel serves it. */
  lookup(topic: string): { handler: ChannelHandler; id: string } | undefined {
    const i = topic.indexOf(':');
    if (i <= 0) return undefined;
    const handler = this.byKind.get(topic.slice(0, i));
    return handler ? { handler, id: topic.slice(i + 1) } : undefined;
  }
}
