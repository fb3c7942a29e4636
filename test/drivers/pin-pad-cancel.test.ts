/**
 * PinPad.cancel() when the pad never confirms with 41: the pending readCard must end as
 * `canceled` once cancel() gives up (POS120), not wait for the pad's own card-read timeout; the
 * serialized chain moves on; a late 21 for the abandoned read is an out-of-turn warning whose card
 * data is wiped. The VirtualPinPad over mock:// with `override('40', () => [])`; the host runs on a
 * fake clock (no sleeps, no timed assertions).
 */
import { Buffer } from 'node:buffer';
import { once } from 'node:events';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AgentError } from '../../common/agent-error.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { decodeMessage, encodeMessage, type PadMessage } from '../../drivers/pinpad/messages.js';
import { PinPad, type ReadCardResult } from '../../drivers/pinpad/pin-pad.js';
import { createTransport } from '../../drivers/transport/transport.js';
import { serveMock } from '../../simulator/pad-server.js';
import { buildEmvTlv, findTestCard } from '../../simulator/test-cards.js';
import { VirtualPinPad, type VirtualPinPadOptions } from '../../simulator/virtual-pin-pad.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** Every message 21 the host decodes, as the PinPad got it (to check that it wipes them). */
const decodedCards: Extract<PadMessage, { id: '21' }>[] = [];
vi.mock('../../drivers/pinpad/messages.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../drivers/pinpad/messages.js')>();
  return {
    ...original,
    decodeMessage: (payload: Buffer) => {
      const message = original.decodeMessage(payload);
      if (message.id === '21') decodedCards.push(message);
      return message;
    },
  };
});

const RESPONSE_TIMEOUT_MS = 5000;
const readReq = {
  amountMinor: 500,
  currency: 'EUR',
  timeoutSeconds: 60,
  entryModes: ['S', 'C', 'T'] as ('S' | 'C' | 'T')[],
};

const cleanups: (() => Promise<void>)[] = [];
let nameCounter = 0;
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function setup(
  padOptions: VirtualPinPadOptions = {},
): Promise<{ pad: VirtualPinPad; pinPad: PinPad; clock: FakeClock }> {
  const clock = new FakeClock();
  // The pad keeps real time: its 60 s card-read timeout never fires during the test.
  const pad = new VirtualPinPad(padOptions);
  const server = serveMock(pad, `pin-pad-cancel-${process.pid}-${nameCounter++}`);
  cleanups.push(() => server.stop());
  const pinPad = await PinPad.open({
    transport: createTransport(server.url),
    boundary: new CardBoundary({
      tokenKey: Buffer.alloc(32, 7),
      vaultPublicKey: nacl.box.keyPair().publicKey,
    }),
    clock,
    responseTimeoutMs: RESPONSE_TIMEOUT_MS,
    // Link timers far beyond the advances below: only the response timers are under test.
    link: { ackTimeoutMs: 600_000, interByteTimeoutMs: 600_000 },
    reconnect: false,
  });
  cleanups.push(() => pinPad.close());
  return { pad, pinPad, clock };
}

/** Lets I/O settle (without timing anything) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe('PinPad.cancel() when the pad drops 41', () => {
  it('ends the pending readCard as canceled once cancel gives up; the next command runs', async () => {
    const { pad, pinPad, clock } = await setup();
    pad.override('40', () => []);
    let read: ReadCardResult | undefined;
    const reading = pinPad.readCard(readReq).then((r) => (read = r));
    await until(() => pad.received.some((m) => m.id === '20'));

    const canceling = pinPad.cancel();
    const cancelError = canceling.catch((error: unknown) => error as AgentError);
    await until(() => pad.received.some((m) => m.id === '40'));
    // No 41: the read is still pending just before cancel's timeout…
    clock.advance(RESPONSE_TIMEOUT_MS - 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(read).toBeUndefined();
    // …and ends as canceled when cancel gives up with POS120.
    clock.advance(1);
    expect(await cancelError).toMatchObject({ code: 'POS120', details: { request: '40' } });
    await new Promise((resolve) => setImmediate(resolve));
    expect(read).toEqual({ ok: false, reason: 'canceled' });
    await reading;

    // The serialized chain is not blocked by the abandoned read: the next command first cancels
    // it again (now the pad confirms with 41), then runs.
    pad.override('40', undefined);
    await expect(pinPad.status()).resolves.toMatchObject({ model: 'VPP-100' });
    expect(pad.received.map((m) => m.id)).toEqual(['20', '40', '40', '00']);
  });

  it('a late 21 for the canceled read is an out-of-turn warning with its card data wiped', async () => {
    const { pad, pinPad, clock } = await setup();
    pad.override('40', () => []);
    const reading = pinPad.readCard(readReq);
    await until(() => pad.received.some((m) => m.id === '20'));
    const canceling = pinPad.cancel().catch((error: unknown) => error);
    await until(() => pad.received.some((m) => m.id === '40'));
    clock.advance(RESPONSE_TIMEOUT_MS);
    await canceling;
    expect(await reading).toEqual({ ok: false, reason: 'canceled' });

    // The pad finishes its abandoned read: 21 with clear card data, out of turn now.
    decodedCards.length = 0;
    const warning = once(pinPad, 'warning');
    const frames = pinPad.linkStats.framesReceived;
    pad.presentCard('visa', { entryMode: 'S' });
    const [error] = (await warning) as [AgentError];
    expect(error.code).toBe('POS121');
    expect(error.details).toEqual({ id: '21' });
    expect(pinPad.linkStats.framesReceived).toBe(frames + 1);
    // The decoded tracks were wiped (they held the test card's PAN).
    expect(decodedCards).toHaveLength(1);
    const [card] = decodedCards;
    expect(card !== undefined && Buffer.concat([card.track1, card.track2]).length).toBeGreaterThan(
      0,
    );
    for (const field of [card?.track1, card?.track2, card?.emvTlv])
      expect(field?.every((b) => b === 0)).toBe(true);

    // No card came out of it: the next read waits for its own card.
    pad.override('40', undefined);
    const next = pinPad.readCard(readReq);
    await until(() => pad.received.filter((m) => m.id === '20').length === 2);
    await pinPad.cancel();
    expect(await next).toEqual({ ok: false, reason: 'canceled' });
  });

  it('a late 21 for the abandoned read never lands on the next payment (regression: it could)', async () => {
    const { pad, pinPad, clock } = await setup();
    // The first cancel is lost: no 41, and the pad keeps reading.
    pad.injectFault({ kind: 'ignore-cancel' });
    const reading = pinPad.readCard(readReq);
    await until(() => pad.received.some((m) => m.id === '20'));
    const canceling = pinPad.cancel().catch((error: unknown) => error as AgentError);
    await until(() => pad.received.some((m) => m.id === '40'));
    clock.advance(RESPONSE_TIMEOUT_MS);
    expect(await canceling).toMatchObject({ code: 'POS120' });
    expect(await reading).toEqual({ ok: false, reason: 'canceled' });

    // The previous customer's card finally reads, just as the next host frame arrives, whatever
    // that frame is. Without the second cancel it would be the next payment's 20, and this 21
    // its answer.
    const declined = findTestCard('declined');
    const late: PadMessage = {
      id: '21',
      entryMode: 'C',
      track1: Buffer.alloc(0),
      track2: Buffer.alloc(0),
      emvTlv: buildEmvTlv(declined?.pan ?? ''),
    };
    const firstFrameAfter = (replies: PadMessage[]) => (): PadMessage[] => {
      pad.override('20', undefined);
      pad.override('40', undefined);
      return replies;
    };
    pad.override('20', firstFrameAfter([late]));
    pad.override('40', firstFrameAfter([late, { id: '41' }]));
    const warnings: AgentError[] = [];
    pinPad.on('warning', (w) => warnings.push(w));

    const next = pinPad.readCard(readReq);
    await until(() => pad.received.filter((m) => m.id === '20').length === 2);
    // Cancel sent again first, confirmed, and only then the next read.
    expect(pad.received.map((m) => m.id)).toEqual(['20', '40', '40', '20']);
    expect(warnings.map((w) => [w.code, w.details])).toEqual([['POS121', { id: '21' }]]);
    pad.presentCard('visa');
    const result = await next;
    expect(result.ok && [result.card.brand, result.card.last4]).toEqual(['visa', '1111']);
  });

  it('refuses the next operation with POS120 while the pad still does not confirm the cancel', async () => {
    const { pad, pinPad, clock } = await setup();
    pad.override('40', () => []);
    const reading = pinPad.readCard(readReq);
    await until(() => pad.received.some((m) => m.id === '20'));
    const canceling = pinPad.cancel().catch((error: unknown) => error);
    await until(() => pad.received.some((m) => m.id === '40'));
    clock.advance(RESPONSE_TIMEOUT_MS);
    await canceling;
    await reading;

    const next = pinPad.readCard(readReq).catch((error: unknown) => error as AgentError);
    await until(() => pad.received.filter((m) => m.id === '40').length === 2);
    clock.advance(RESPONSE_TIMEOUT_MS);
    const error = await next;
    expect(error).toMatchObject({ code: 'POS120', details: { request: '40' } });
    expect((error as AgentError).message).toMatch(/did not confirm the cancel of an earlier/);
    // Nothing was sent for the refused read.
    expect(pad.received.filter((m) => m.id === '20')).toHaveLength(1);
  });
});

describe('optional request ids (pads with the RID capability)', () => {
  it('20/30 and their answers carry the id on the wire; a pad without RID gets none', () => {
    const read = encodeMessage({ id: '20', ...readReq, requestId: 'R1Z' });
    expect(read.toString('latin1')).toBe('20\x1c500\x1cEUR\x1c60\x1cS,C,T\x1cR1Z');
    expect(decodeMessage(read)).toEqual({ id: '20', ...readReq, requestId: 'R1Z' });
    expect(decodeMessage(encodeMessage({ id: '39', reason: 'timeout', requestId: 'R2' }))).toEqual({
      id: '39',
      reason: 'timeout',
      requestId: 'R2',
    });
    // Without an id the bytes are the reference set's, unchanged.
    expect(encodeMessage({ id: '29', reason: 'canceled' }).toString('latin1')).toBe(
      '29\x1ccanceled',
    );
    expect(() =>
      encodeMessage({
        id: '30',
        amountMinor: 1,
        currency: 'EUR',
        timeoutSeconds: 5,
        requestId: 'r-1',
      }),
    ).toThrow(/requestId/);
  });

  it('an answer with the id of an abandoned read is discarded without a second cancel', async () => {
    const { pad, pinPad, clock } = await setup({
      capabilities: ['MSR', 'ICC', 'CTLS', 'PIN', 'RID'],
    });
    await pinPad.status();
    const first = pinPad.readCard(readReq).catch((error: unknown) => error as AgentError);
    await until(() => pad.received.some((m) => m.id === '20'));
    // The host gives up on the first read (no answer in time): abandoned, no 41.
    clock.advance(readReq.timeoutSeconds * 1000 + RESPONSE_TIMEOUT_MS);
    expect(await first).toMatchObject({ code: 'POS120' });
    const firstId = (pad.received.find((m) => m.id === '20') as { requestId?: string }).requestId;
    expect(firstId).toMatch(/^R[0-9A-Z]+$/);

    const warnings: AgentError[] = [];
    pinPad.on('warning', (w) => warnings.push(w));
    const next = pinPad.readCard(readReq);
    await until(() => pad.received.filter((m) => m.id === '20').length === 2);
    // No second cancel: the request id tells the answers apart.
    expect(pad.received.map((m) => m.id)).toEqual(['00', '20', '20']);
    const nextId = (pad.received.at(-1) as { requestId?: string }).requestId;
    expect(nextId).not.toBe(firstId);
    // The first read's card arrives now, after the next request went out: not taken for it.
    await pad.sendRaw({
      id: '21',
      entryMode: 'C',
      track1: Buffer.alloc(0),
      track2: Buffer.alloc(0),
      emvTlv: buildEmvTlv(findTestCard('declined')?.pan ?? ''),
      requestId: firstId as string,
    });
    await until(() => warnings.length === 1);
    expect(warnings[0]).toMatchObject({ code: 'POS121', details: { id: '21' } });
    pad.presentCard('visa');
    const result = await next;
    expect(result.ok && [result.card.brand, result.card.last4]).toEqual(['visa', '1111']);
  });
});
