/** Authentication: signed session tokens and how they arrive on a WebSocket upgrade. */
export * from './token.js';
