/**
 * An error answered over HTTP (the server API, the web routes): the status
 * its code has in the error registry, and the body `{error: {code, message}}`.
 */
import type { FastifyReply } from 'fastify';
import { httpError } from '../errors.js';

export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  const { status, body } = httpError(err);
  return reply.code(status).send(body);
}
