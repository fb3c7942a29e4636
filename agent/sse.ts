/**
 * `GET /v1/events` (architecture.md §6): the terminal's prompts and results as server-sent events
 * (WHATWG HTML §9.2, `text/event-stream`), for a POS app that mirrors the PIN pad's screen.
 *
 * ```
 * event: approved_offline
 * data: {"kind":"approved_offline","text":"Approved offline — payment stored","amountMinor":1250,"currency":"EUR","amount":"EUR 12.50","idempotencyKey":"…","paymentId":"pay_…","at":"…"}
 *
 * ```
 *
 * `?include=status` (the status page) adds a `status` event — `GET /v1/status` plus `recent`,
 * the last payments, masked — at once and then whenever it changes (checked every
 * {@link STATUS_POLL_MS}), and replays the latest prompt on connect, so a page opened mid-payment
 * shows it.
 *
 * The bearer token check of the API's `onRequest` hook applies as to every route (or the status
 * page's session cookie, agent/api-auth.ts). Prompts carry
 * no card data (token-free even: only ids and texts). Open streams are ended when the API closes,
 * so a subscriber never keeps the agent from stopping.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { EventsQuerySchema, PromptSchema } from './api-schemas.js';
import type { TerminalPrompt } from './payment-service.js';

/** How often a status page's stream checks the status for a change, ms. */
const STATUS_POLL_MS = 500;

/** How often a comment line keeps idle proxies from closing the stream, ms. */
const KEEPALIVE_MS = 15_000;

/**
 * Adds `GET /v1/events` to `app`: every `prompt` the payment service emits is written as one
 * event whose name is the prompt's `kind` and whose data is the prompt as JSON.
 *
 * @param source — emits `prompt` ({@link TerminalPrompt}); the PaymentService.
 * @param page.status — `GET /v1/status`; page.recent — the last payments as the API shows them.
 */
export function registerEventStream(
  app: FastifyInstance<Server, IncomingMessage, ServerResponse>,
  source: EventEmitter,
  page: { status: () => unknown; recent: () => unknown[] },
): void {
  const streams = new Set<ServerResponse>();
  let latest: TerminalPrompt | undefined;
  source.on('prompt', (prompt: TerminalPrompt) => {
    latest = prompt;
  });
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.end();
    streams.clear();
  });
  app.withTypeProvider<ZodTypeProvider>().get(
    '/v1/events',
    {
      schema: {
        operationId: 'events',
        summary: 'Terminal prompts and results as server-sent events (text/event-stream)',
        description:
          'Each event is named by the prompt `kind` (`present_card`, `enter_pin`, `authorizing`, `approved_online`, `approved_offline`, `declined`, `canceled`, `failed`, `reversed`, `warning`); its data is a `Prompt` as JSON. With `?include=status`, also `status` events (`Status` plus `recent`).',
        tags: ['status'],
        querystring: EventsQuerySchema,
        response: {
          200: {
            description:
              'A stream of events: `event: <kind>` and `data: <Prompt as JSON>`, a blank line after each',
            content: { 'text/event-stream': { schema: PromptSchema } },
          },
        },
      },
    },
    (request, reply) => {
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
      let poll: NodeJS.Timeout | undefined;
      if (request.query.include === 'status') {
        let last = '';
        const sendStatus = (): void => {
          let data: string;
          try {
            data = JSON.stringify({ ...(page.status() as object), recent: page.recent() });
          } catch (error) {
            // The store closes while the agent stops; the stream ends with the API right after.
            request.log.debug({ err: error }, 'status for the events stream unavailable');
            return;
          }
          if (data === last) return;
          last = data;
          res.write(`event: status\ndata: ${data}\n\n`);
        };
        sendStatus();
        if (latest !== undefined) onPrompt(latest);
        poll = setInterval(sendStatus, STATUS_POLL_MS);
        poll.unref();
      }
      res.on('close', () => {
        clearInterval(keepalive);
        if (poll !== undefined) clearInterval(poll);
        source.off('prompt', onPrompt);
        streams.delete(res);
      });
    },
  );
}
