/**
 * Control of a user's sessions wherever they are: one broadcast subject
 * (`sandbar.<c>.userctl`) that every worker subscribes, and on which a
 * message names a user and what to do with its local sessions:
 *
 *   {t: "disconnect", user, code, reason}  close every session of the user with this close code
 *   {t: "unsubscribe", user, room}         end the user's room:<room> channels (phx_close to the client)
 *
 * A broadcast, not a request to the user's actor: a session that joined only
 * rooms (or no channel at all) is known to no user actor. Used by the server
 * API (disconnect, unsubscribe); built to be the one mechanism for closing a
 * user's sessions cluster-wide (token revocation has the same shape).
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../observability/logger.js';
import type { Subjects } from './subjects.js';

export type UserCtlMsg =
  | { t: 'disconnect'; user: string; code: number; reason: string }
  | { t: 'unsubscribe'; user: string; room: string };

/** What a worker does with a control message (it holds the session table). */
export interface UserCtlHandler {
  onUserCtl(msg: UserCtlMsg): void;
}

export class UserControl {
  private sub: Subscription | null = null;

  constructor(private readonly nc: NatsConnection, private readonly subjects: Subjects, private readonly logger: Logger) {}

  /** Subscribes (and waits until the server has it). */
  async start(handler: UserCtlHandler): Promise<void> {
    this.sub = this.nc.subscribe(this.subjects.userCtl(), { callback: (err, msg) => {
      if (err) return;
      try {
        handler.onUserCtl(msg.json<UserCtlMsg>());
      } catch (e) {
        this.logger.error({ err: e }, 'user control message failed');
      }
    } });
    await this.nc.flush();
  }

  /** Tells every worker of the cluster; resolves once the server has the message (flush). */
  async send(msg: UserCtlMsg): Promise<void> {
    this.nc.publish(this.subjects.userCtl(), JSON.stringify(msg));
    await this.nc.flush();
  }

  stop(): void {
    this.sub?.unsubscribe();
  }
}
