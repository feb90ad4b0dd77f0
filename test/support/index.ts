/**
 * The support layer of the tests (and, through its launchers, of bench/):
 * real nats-server and Sandbar processes, the mocha fixtures that start and
 * stop them per suite, raw Phoenix clients, and the cluster checks. Test
 * files import from here; benches import the launchers (host.ts, nats.ts,
 * server-process.ts) directly, which need no mocha.
 */
export { Recorder, sleep, until } from './recorder.js';
export { LogFollower, type LogLine } from './log-follower.js';
export { ServerProcess, type Exit, type LaunchOptions } from './server-process.js';
export { NatsCluster, NatsNode, NatsServer, jetStreamReady, startNatsCluster, startNatsServer, type NatsEndpoint, type NatsServerHandle, type NatsServerOptions, type NodePlacement } from './nats.js';
export { MAIN, SECRET, SandbarHost, cleanEnv, runSandbar, spawnSandbar, startHost, startHostFromConfig, startTogether, token, type CliRun, type ConfigHostHandle, type Flags, type HostHandle, type HostOptions } from './host.js';
export { Lab, useLab, withCluster, withHost, withHosts, withNats, withTempDir } from './fixtures.js';
export { RawClient, clientOnWorker, openMany, type Frame } from './clients.js';
export { dmLoad, lostAcks, overlappingMasters, Peer, readInbox, records, settled, type Ack, type Record_ } from './cluster.js';
export { freePort } from './ports.js';
export { ROOT } from './paths.js';
export { useBystander } from './bystander.js';
