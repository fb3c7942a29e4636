/**
 * The terminal's other parts in the HTTP bench (bench/payment-http.ts), in a worker thread: the
 * POS app, which posts `POST /v1/payments` and times the answer, and the PIN pad, a virtual pad
 * served on `tcp://` (the agent talks to it through its real TCP transport, as to a pad behind
 * ser2net). On a terminal both are other processes or devices: on the agent's event loop, the
 * HTTP client's work and the pad simulator's would be charged to the agent and delay its answers.
 *
 * The POS app posts with `node:http` over one keep-alive connection, as a POS app's HTTP client
 * does. Not `fetch`: undici's fetch (WHATWG streams, its own request and response objects) spent
 * ~0.5–1.5 ms of this thread per request, on the path of every answer, measured as if it were the
 * agent's (issue 9 §2: the HTTP path measures the agent, not the bench's client library).
 *
 * Parent → worker: {@link ClientRequest}s, answered in order by {@link ClientAnswer}s.
 */
import http from 'node:http';
import { parentPort } from 'node:worker_threads';
import { serveTcp } from '../simulator/pad-server.js';
import { findTestCard } from '../simulator/test-cards.js';
import { VirtualPinPad } from '../simulator/virtual-pin-pad.js';

/** What the worker is asked, in order: start the pad, learn the API, pay (many times), stop. */
export type ClientRequest =
  | { kind: 'start-pad' }
  | { kind: 'api'; apiUrl: string; apiToken: string }
  | {
      kind: 'pay';
      idempotencyKey: string;
      body: { amount: number; currency: string; offline: 'force_offline' | 'prefer_online' };
    }
  | { kind: 'stop' };

/** The answers: the pad's URL; ready; a payment's status, state and time (ms); stopped. */
export type ClientAnswer =
  | { kind: 'pad'; url: string }
  | { kind: 'ready' }
  | { kind: 'paid'; status: number; state: string | undefined; ms: number; text: string }
  | { kind: 'stopped' };

const pad = new VirtualPinPad();
let padServer: Awaited<ReturnType<typeof serveTcp>> | undefined;
let api: { apiUrl: string; apiToken: string } | undefined;
const card = findTestCard('visa');
const reply = (answer: ClientAnswer): void => parentPort?.postMessage(answer);

/** One connection, kept open between payments (the POS app's, not one per payment). */
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** POSTs `body` to `url`; resolves with the status and the whole answer as text. */
function post(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: keepAlive,
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Posts one payment with the card presented on the pad; never throws (status 0 = no answer). */
async function pay(request: Extract<ClientRequest, { kind: 'pay' }>): Promise<ClientAnswer> {
  if (api === undefined || card === undefined) throw new Error('the API is not known yet');
  pad.presentCard(card, { entryMode: 'C' });
  const t0 = performance.now();
  try {
    const response = await post(
      `${api.apiUrl}/v1/payments`,
      {
        authorization: `Bearer ${api.apiToken}`,
        'content-type': 'application/json',
        'idempotency-key': request.idempotencyKey,
      },
      JSON.stringify(request.body),
    );
    const text = response.text;
    const ms = performance.now() - t0;
    let state: string | undefined;
    try {
      const json = JSON.parse(text) as { state?: string; payment?: { state?: string } };
      state = json.state ?? json.payment?.state;
    } catch {
      state = undefined;
    }
    return { kind: 'paid', status: response.status, state, ms, text };
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    return { kind: 'paid', status: 0, state: undefined, ms: performance.now() - t0, text };
  }
}

parentPort?.on('message', (request: ClientRequest) => {
  void (async () => {
    if (request.kind === 'start-pad') {
      padServer = await serveTcp(pad);
      reply({ kind: 'pad', url: padServer.url });
    } else if (request.kind === 'api') {
      api = { apiUrl: request.apiUrl, apiToken: request.apiToken };
      reply({ kind: 'ready' });
    } else if (request.kind === 'pay') {
      reply(await pay(request));
    } else {
      keepAlive.destroy();
      await padServer?.stop();
      reply({ kind: 'stopped' });
    }
  })();
});
