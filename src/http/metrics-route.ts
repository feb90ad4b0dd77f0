/**
 * `GET /metrics`: the host's metrics in the Prometheus text format, gathered
 * by the primary from every worker (src/observability/gather.ts), whichever
 * worker the scrape lands on. 503 when the host cannot gather them (a worker
 * or the primary did not answer in time): Prometheus records that as a
 * failed scrape (`up == 0`) instead of a partial one.
 */
import type { FastifyInstance } from 'fastify';
import { CONTENT_TYPE } from '../observability/exposition.js';
import type { ScrapeResult } from '../observability/gather.js';

export function registerMetrics(app: FastifyInstance, scrape: () => Promise<ScrapeResult>): void {
  app.get('/metrics', async (_req, reply) => {
    const r = await scrape();
    return reply.code(r.status).header('content-type', CONTENT_TYPE).send(r.text);
  });
}
