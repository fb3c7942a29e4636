/**
 * A payment through the agent's local API, as the POS app makes it: a test card presented on the
 * virtual PIN pad, then `POST /v1/payments` with the bearer token and an Idempotency-Key.
 */
import { expect } from 'vitest';
import type { RunningAgent } from '../../agent/agent.js';
import { findTestCard } from '../../simulator/test-cards.js';
import type { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';

/** The answer: HTTP status, the body as text and parsed (`{}` when it is not JSON). */
export interface PayAnswer {
  status: number;
  text: string;
  json: Record<string, unknown>;
}

/**
 * Presents `card` (a simulator test card brand, default visa, chip) on `pad` and posts `body`
 * under `idempotencyKey`.
 *
 * @throws Error when the simulator has no such test card.
 */
export async function payThroughApi(
  agent: Pick<RunningAgent, 'apiUrl' | 'apiToken'>,
  pad: VirtualPinPad,
  idempotencyKey: string,
  body: Record<string, unknown>,
  card = 'visa',
): Promise<PayAnswer> {
  const testCard = findTestCard(card);
  if (testCard === undefined) throw new Error(`no ${card} test card in the simulator`);
  pad.presentCard(testCard, { entryMode: 'C' });
  const response = await fetch(`${agent.apiUrl}/v1/payments`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${agent.apiToken}`,
      'content-type': 'application/json',
      'idempotency-key': idempotencyKey,
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: the caller looks at text
  }
  return { status: response.status, text, json };
}

/**
 * A `force_offline` payment of `amount` EUR minor units under `idempotencyKey` (see
 * {@link payThroughApi}) that the agent must accept: fails the test with the answer's text when
 * the status is not 2xx.
 */
export async function payOffline(
  agent: Pick<RunningAgent, 'apiUrl' | 'apiToken'>,
  pad: VirtualPinPad,
  idempotencyKey: string,
  amount: number,
): Promise<void> {
  const answer = await payThroughApi(agent, pad, idempotencyKey, {
    amount,
    currency: 'EUR',
    offline: 'force_offline',
  });
  expect(answer.status, answer.text).toBeLessThan(300);
}
