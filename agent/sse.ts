/**
 * `GET /v1/events` (DESIGN §6): the terminal's prompts and results as server-sent events
 * (WHATWG HTML §9.2, `text/event-stream`), for a POS app that mirrors the PIN pad's screen.
 *
 * ```
 * event: approved_offline
 * data: {"kind":"approved_offline","text":"approved offline — stored","idempotencyKey":"…","paymentId":"pay_…","at":"…"}
 *
 * ```
 *
 * The bearer token check of the API's `onRequest` hook applies as to every route. Prompts carry
 * no card data (token-free even: only ids and texts). Open streams are ended when the API closes,
 * so a subscriber never keeps the agent from stopping.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from './logger.js';
import type { TerminalPrompt } from './payment-service.js';

/** The API server as `buildApi` makes it (pino logger). */
type ApiServer = FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>;

/** How often a comment line keeps idle proxies from closing the stream, ms. */
const KEEPALIVE_MS = 15_000;

/**
 * Adds `GET /v1/events` to `app`: every `prompt` the payment service emits is written as one
 * event whose name is the prompt's `kind` and whose data is the prompt as JSON.
 *
 * @param source — emits `prompt` ({@link TerminalPrompt}); the PaymentService.
 */
export function registerEventStream(app: ApiServer, source: EventEmitter): void {
  const streams = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.end();
    streams.clear();
  });
  app.get('/v1/events', (request, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.write(': pos-agent terminal prompts\n\n');
    streams.add(res);
    const onPrompt = (prompt: TerminalPrompt): void => {
      res.write(`event: ${prompt.kind}\ndata: ${JSON.stringify(prompt)}\n\n`);
    };
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    source.on('prompt', onPrompt);
    res.on('close', () => {
      clearInterval(keepalive);
      source.off('prompt', onPrompt);
      streams.delete(res);
    });
  });
}
