/**
 * Operator-facing admin surface of Sandbar: the NATS micro service that
 * `nats micro ls|info|stats` and `nats req` talk to.
 */
export {
  startMicroService,
  serviceErrorStatus,
  SERVICE_ERROR_HEADER,
  SERVICE_ERROR_CODE_HEADER,
} from './micro.js';
export type {
  EndpointSpec,
  MicroHandler,
  MicroRequest,
  MicroService,
  MicroServiceOptions,
  MicroPingResponse,
  MicroInfoResponse,
  MicroStatsResponse,
  MicroEndpointStats,
} from './micro.js';
