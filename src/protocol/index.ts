/** The Phoenix Channels V2 wire protocol: text and binary frames, ids and topics. */
export * from './frame.js';
export * from './binary.js';
export * from './ids.js';
