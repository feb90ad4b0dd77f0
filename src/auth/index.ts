/**
 * Authentication and room authorization: tokens (JWT, verified by jose),
 * how they arrive on an upgrade, revocation, and who may do what in a room.
 * See docs/auth.md.
 */
export * from './upgrade.js';
export * from './token.js';
export * from './legacy-token.js';
export { TokenVerifier, type Identity } from './verifier.js';
export { RevokedUsers, revokeUser, listenForRevocations, type Revocation } from './revocation.js';
export { RefusalLog } from './refusal-log.js';
