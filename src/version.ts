/** Sandbar's version (semver), as heartbeats and the NATS micro service report it. Keep in step with package.json. */
export const VERSION = '0.1.0';
