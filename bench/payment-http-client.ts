/**
 * The POS app of the HTTP bench (bench/payment-http.ts) in a worker thread: it posts
 * `POST /v1/payments` and times the answer. The POS app is another process on the terminal;
 * posting from the agent's own event loop would charge the HTTP client's work (undici, JSON) to
 * the agent and delay the agent's answers behind the client's callbacks.
 *
 * Parent → worker: {@link ClientRequest}. Worker → parent: {@link ClientAnswer}.
 */
import { parentPort, workerData } from 'node:worker_threads';

/** One payment to post. */
export interface ClientRequest {
  idempotencyKey: string;
  body: { amount: number; currency: string; offline: 'force_offline' | 'prefer_online' };
}

/** Its answer: HTTP status, the payment's state, the time from send to the whole answer (ms). */
export interface ClientAnswer {
  status: number;
  state: string | undefined;
  ms: number;
  text: string;
}

/** What the worker is started with. */
export interface ClientData {
  apiUrl: string;
  apiToken: string;
}

const { apiUrl, apiToken } = workerData as ClientData;

parentPort?.on('message', (request: ClientRequest) => {
  void (async () => {
    const t0 = performance.now();
    try {
      const response = await fetch(`${apiUrl}/v1/payments`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${apiToken}`,
          'content-type': 'application/json',
          'idempotency-key': request.idempotencyKey,
        },
        body: JSON.stringify(request.body),
      });
      const text = await response.text();
      const ms = performance.now() - t0;
      let state: string | undefined;
      try {
        const json = JSON.parse(text) as { state?: string; payment?: { state?: string } };
        state = json.state ?? json.payment?.state;
      } catch {
        state = undefined;
      }
      parentPort?.postMessage({ status: response.status, state, ms, text } satisfies ClientAnswer);
    } catch (error) {
      parentPort?.postMessage({
        status: 0,
        state: undefined,
        ms: performance.now() - t0,
        text: error instanceof Error ? error.message : String(error),
      } satisfies ClientAnswer);
    }
  })();
});
