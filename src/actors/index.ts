export { Actor, NORMAL, SHUTDOWN } from './actor.js';
export type { ActorLink, StopReason } from './actor.js';
export { TimerWheel } from './timer-wheel.js';
export type { TimerEntry } from './timer-wheel.js';
export { systemClock, SimulatedClock } from './clock.js';
export type { Clock } from './clock.js';
