#!/usr/bin/env node
/**
 * Entry point: a forked worker runs the worker; otherwise the command line
 * decides (start the host, check the config, mint a token).
 */
import cluster from 'node:cluster';

if (cluster.isWorker) {
  const { runWorker } = await import('./cluster/worker.js');
  await runWorker();
} else {
  const { runCli } = await import('./cli.js');
  await runCli(process.argv.slice(2));
}
