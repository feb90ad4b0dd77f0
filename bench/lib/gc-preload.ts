/**
 * Preloaded into bench server processes (primary and workers) through
 * NODE_OPTIONS="--expose-gc --import=<this file>" by bench/idle-sessions.ts,
 * for Sandbar and the ws peer alike: on SIGUSR2 the process runs a full
 * garbage collection, so heap readings count live objects rather than
 * whatever garbage the handshakes left behind. Nothing else changes.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (typeof gc === 'function') {
  process.on('SIGUSR2', () => {
    gc();
    gc();
  });
}
export {};
