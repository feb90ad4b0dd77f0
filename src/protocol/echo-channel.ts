/**
 * `echo:*`: a diagnostic channel that replies to every push with its payload
 * (text or binary). With `debug.faultInjection = true` the events `crash` and
 * `crash_async` throw inside the session's handler, synchronously or from a
 * promise, to show that a fault costs only that session.
 */
import type { ChannelHandler } from './channel-registry.js';

export function echoChannel(opts: { faultInjection: boolean }): ChannelHandler {
  return {
    join(session, ch, _params, ref) { session.joinOk(ch, ref, { session: session.id }); },
    handleIn(session, ch, event, payload, ref) {
      if (opts.faultInjection) {
        if (event === 'crash') throw new Error('fault injected by echo crash');
        if (event === 'crash_async') {
          // The rejection reaches the session through its mailbox guard.
          session.post({ run: () => { throw new Error('fault injected by echo crash_async'); } });
          return;
        }
      }
      session.reply(ch, ref, 'ok', payload);
    },
    leave() {},
  };
}
