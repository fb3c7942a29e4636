import { Buffer } from 'node:buffer';
import { once } from 'node:events';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { PinPad, type PinPadOptions } from '../../drivers/pinpad/pin-pad.js';
import { createTransport } from '../../drivers/transport/transport.js';
import {
  hasSocat,
  serveMock,
  servePty,
  serveTcp,
  type PadServer,
} from '../../simulator/pad-server.js';
import { TEST_PANS } from '../../simulator/test-cards.js';
import { VirtualPinPad, type VirtualPinPadOptions } from '../../simulator/virtual-pin-pad.js';
import { FakeClock } from '../helpers/fake-clock.js';
import {
  CANCEL_EXCHANGE_HOST_TO_PAD,
  CANCEL_EXCHANGE_PAD_TO_HOST,
  STATUS_EXCHANGE_HOST_TO_PAD,
  STATUS_EXCHANGE_PAD_TO_HOST,
} from '../fixtures/link-traces.js';

const socat = hasSocat();
if (!socat)
  console.warn(
    'virtual-pin-pad.test: socat is not installed; the pseudo-terminal tests are skipped (apt-get install socat)',
  );

const vault = nacl.box.keyPair();
const tokenKey = Buffer.alloc(32, 3);
const cleanups: (() => Promise<void>)[] = [];
let nameCounter = 0;

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

type Kind = 'mock' | 'tcp' | 'pty';

async function serve(kind: Kind, pad: VirtualPinPad): Promise<PadServer> {
  if (kind === 'mock') return serveMock(pad, `vpp-${process.pid}-${nameCounter++}`);
  if (kind === 'tcp') return serveTcp(pad);
  return servePty(pad);
}

async function setup(
  kind: Kind,
  padOptions: VirtualPinPadOptions = {},
  pinPadOptions: Partial<Omit<PinPadOptions, 'transport' | 'boundary'>> = {},
): Promise<{ pad: VirtualPinPad; pinPad: PinPad }> {
  const pad = new VirtualPinPad(padOptions);
  const server = await serve(kind, pad);
  cleanups.push(() => server.stop());
  const pinPad = await PinPad.open({
    transport: createTransport(server.url),
    boundary: new CardBoundary({ tokenKey, vaultPublicKey: vault.publicKey }),
    ...pinPadOptions,
  });
  cleanups.push(() => pinPad.close());
  return { pad, pinPad };
}

/** Waits (without timing anything) until `condition` holds; I/O settles between checks. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

/** True once `condition` holds, false when it has not within `ms` (checked every 5 ms). */
async function within(ms: number, condition: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

const bytesOf = (pad: VirtualPinPad, direction: 'host-to-pad' | 'pad-to-host'): number[] =>
  pad.trace.filter((t) => t.direction === direction).flatMap((t) => [...t.bytes]);

describe.each<Kind>(['mock', 'tcp', 'pty'])('PinPad ⇄ virtual PIN pad, %s transport', (kind) => {
  it.skipIf(kind === 'pty' && !socat)(
    'runs status, display, card read, PIN and result',
    async () => {
      const { pad, pinPad } = await setup(kind);
      expect(pinPad.state).toBe('connected');
      expect(await pinPad.status()).toEqual({
        model: 'VPP-100',
        serial: 'SIM0000001',
        firmware: '1.0.0',
        capabilities: ['MSR', 'ICC', 'CTLS', 'PIN', 'SRED'],
      });
      await pinPad.display('EUR 12.50', 'Insert or tap card');
      expect(pad.display).toEqual(['EUR 12.50', 'Insert or tap card']);

      pad.presentCard('visa', { entryMode: 'C' });
      const read = await pinPad.readCard({
        amountMinor: 1250,
        currency: 'EUR',
        timeoutSeconds: 30,
        entryModes: ['S', 'C', 'T'],
      });
      expect(read.ok).toBe(true);
      if (!read.ok) return;
      expect(read.card).toMatchObject({
        brand: 'visa',
        first6: '411111',
        last4: '1111',
        entryMode: 'chip',
        expiryYear: 2030,
        expiryMonth: 12,
      });
      expect(openSealedCard(read.card.sealed ?? '', vault.secretKey).panDigits).toBe(
        '4111111111111111',
      );
      const json = JSON.stringify(read.card);
      expect(findPanShapedRuns(json)).toEqual([]);
      for (const pan of TEST_PANS) expect(json).not.toContain(pan);

      const pin = await pinPad.requestPin({
        amountMinor: 1250,
        currency: 'EUR',
        timeoutSeconds: 30,
      });
      expect(pin).toMatchObject({ ok: true, pinBlock: { format: 0 } });
      if (pin.ok) expect(pin.pinBlock.pinBlockHex).toMatch(/^[0-9A-F]{16}$/);

      await pinPad.showResult('approved', 'Approved');
      expect(pad.lastResult).toEqual({ outcome: 'approved', text: 'Approved' });
      expect(pad.received.map((m) => m.id)).toEqual(['00', '10', '20', '30', '50']);
    },
  );
});

describe('PinPad ⇄ virtual PIN pad: recorded traces (mock://)', () => {
  it('status exchange: exactly the recorded bytes reach each side', async () => {
    const { pad, pinPad } = await setup('mock', {
      model: 'M',
      serial: 'S',
      firmware: 'F',
      capabilities: ['PIN'],
    });
    await pinPad.status();
    await until(() => bytesOf(pad, 'host-to-pad').length >= STATUS_EXCHANGE_HOST_TO_PAD.length);
    expect(bytesOf(pad, 'host-to-pad')).toEqual(STATUS_EXCHANGE_HOST_TO_PAD);
    expect(bytesOf(pad, 'pad-to-host')).toEqual(STATUS_EXCHANGE_PAD_TO_HOST);
  });

  it('cancel exchange: the reply 41 has LRC 0x06 and is still ACKed as a frame', async () => {
    const { pad, pinPad } = await setup('mock');
    await pinPad.cancel();
    await until(() => bytesOf(pad, 'host-to-pad').length >= CANCEL_EXCHANGE_HOST_TO_PAD.length);
    expect(bytesOf(pad, 'host-to-pad')).toEqual(CANCEL_EXCHANGE_HOST_TO_PAD);
    expect(bytesOf(pad, 'pad-to-host')).toEqual(CANCEL_EXCHANGE_PAD_TO_HOST);
  });
});

describe('PinPad ⇄ virtual PIN pad: behaviours and faults (mock://)', () => {
  const readReq = {
    amountMinor: 500,
    currency: 'EUR',
    timeoutSeconds: 30,
    entryModes: ['S', 'C', 'T'] as ('S' | 'C' | 'T')[],
  };

  it('bad LRC: the host NAKs, the pad resends, the call succeeds', async () => {
    const { pad, pinPad } = await setup('mock');
    pad.injectFault({ kind: 'bad-lrc' });
    await pinPad.status();
    expect(pinPad.linkStats.badFramesReceived).toBe(1);
    expect(bytesOf(pad, 'host-to-pad')).toContain(0x15);
  });

  it('dropped ACK: the host retransmits and the pad does not run the request twice', async () => {
    const { pad, pinPad } = await setup('mock', {}, { link: { ackTimeoutMs: 50 } });
    pad.injectFault({ kind: 'drop-ack' });
    // The reply can arrive before the retransmission: the link still resends the unACKed frame.
    await pinPad.status();
    await until(() => pinPad.linkStats.retransmissions === 1);
    await pinPad.display('after', 'retransmission');
    expect(pad.received.map((m) => m.id)).toEqual(['00', '10']);
  });

  it('garbage bytes before a frame are discarded and counted', async () => {
    const { pad, pinPad } = await setup('mock');
    pad.injectFault({ kind: 'garbage', bytes: Buffer.from('zzzzz') });
    await pinPad.status();
    expect(pinPad.linkStats.bytesDiscarded).toBe(5);
  });

  it('slow reply beyond responseTimeoutMs rejects with POS120; a late reply is only a warning', async () => {
    const { pad, pinPad } = await setup('mock', {}, { responseTimeoutMs: 100 });
    pad.injectFault({ kind: 'slow-reply', delayMs: 300 });
    await expect(pinPad.status()).rejects.toMatchObject({ code: 'POS120' });
    const [warning] = (await once(pinPad, 'warning')) as [{ code: string }];
    expect(warning.code).toBe('POS121');
    pad.clearFaults();
    await expect(pinPad.status()).resolves.toMatchObject({ model: 'VPP-100' });
  });

  it('card error and PIN cancel faults', async () => {
    const { pad, pinPad } = await setup('mock');
    pad.injectFault({ kind: 'card-error', reason: 'bad_read' });
    expect(await pinPad.readCard(readReq)).toEqual({ ok: false, reason: 'bad_read' });
    pad.injectFault({ kind: 'pin-cancel' });
    expect(
      await pinPad.requestPin({ amountMinor: 1, currency: 'EUR', timeoutSeconds: 10 }),
    ).toEqual({ ok: false, reason: 'canceled' });
    pad.setPinResult('bypassed');
    expect(
      await pinPad.requestPin({ amountMinor: 1, currency: 'EUR', timeoutSeconds: 10 }),
    ).toEqual({ ok: false, reason: 'bypassed' });
  });

  it('a swiped chip card (service code 201) is refused as chip_required', async () => {
    const { pad, pinPad } = await setup('mock');
    pad.presentCard('mastercard', { entryMode: 'S', serviceCode: '201' });
    expect(await pinPad.readCard(readReq)).toEqual({ ok: false, reason: 'chip_required' });
  });

  it('a swipe gives a token with the entry mode swipe; SRED reads pass through', async () => {
    const { pad, pinPad } = await setup('mock');
    pad.presentCard('amex', { entryMode: 'S' });
    pad.presentCard('jcb', { entryMode: 'T', sred: true });
    const swipe = await pinPad.readCard(readReq);
    expect(swipe).toMatchObject({
      ok: true,
      card: { brand: 'amex', entryMode: 'swipe', last4: '0005' },
    });
    const sred = await pinPad.readCard(readReq);
    expect(sred).toMatchObject({
      ok: true,
      card: { brand: 'jcb', entryMode: 'contactless', first6: '353011' },
    });
    if (sred.ok) {
      expect(sred.card.sred?.ksnHex).toMatch(/^[0-9A-F]{20}$/);
      expect(sred.card.sealed).toBeUndefined();
    }
  });

  it('waits for a card presented later; cancel() ends the wait as canceled', async () => {
    const { pad, pinPad } = await setup('mock');
    const first = pinPad.readCard(readReq);
    await once(pad, 'message');
    pad.presentCard('discover');
    expect(await first).toMatchObject({ ok: true, card: { brand: 'discover' } });

    const second = pinPad.readCard(readReq);
    await once(pad, 'message');
    await pinPad.cancel();
    expect(await second).toEqual({ ok: false, reason: 'canceled' });
  });

  it('answers 29 timeout when no card comes within timeoutSeconds (pad on a fake clock)', async () => {
    const clock = new FakeClock();
    const { pad, pinPad } = await setup('mock', { clock });
    const read = pinPad.readCard({ ...readReq, timeoutSeconds: 15 });
    await once(pad, 'message');
    clock.advance(15_000);
    expect(await read).toEqual({ ok: false, reason: 'timeout' });
  });

  it('autoPresent answers every read with the default card', async () => {
    const { pinPad } = await setup('mock', { autoPresent: 'declined' });
    const a = await pinPad.readCard(readReq);
    const b = await pinPad.readCard(readReq);
    expect(a.ok && b.ok && a.card.token === b.card.token && a.card.last4).toBe('0002');
  });

  it('per-test override replaces the default answer', async () => {
    const { pad, pinPad } = await setup('mock');
    pad.override('00', () => ({
      id: '01',
      model: 'OVR',
      serial: '1',
      firmware: '2',
      capabilities: [],
    }));
    expect(await pinPad.status()).toMatchObject({ model: 'OVR', capabilities: [] });
  });

  it('an out-of-turn message is a warning, not a crash; 90 is a device event', async () => {
    const { pad, pinPad } = await setup('mock');
    const warning = once(pinPad, 'warning');
    await pad.sendRaw({ id: '51' });
    expect(((await warning)[0] as { code: string }).code).toBe('POS121');
    const event = once(pinPad, 'device-event');
    pad.sendEvent('card_inserted');
    expect((await event)[0]).toBe('card_inserted');
    await expect(pinPad.status()).resolves.toBeDefined();
  });

  it('unplug rejects the pending call with POS102; replug reconnects with backoff', async () => {
    const { pad, pinPad } = await setup(
      'mock',
      {},
      { reconnect: { initialDelayMs: 5, maxDelayMs: 20 } },
    );
    const states: string[] = [];
    pinPad.on('state', (s) => states.push(s));
    const pending = pinPad.readCard(readReq);
    await once(pad, 'message');
    pad.injectFault({ kind: 'unplug' });
    await expect(pending).rejects.toMatchObject({ code: 'POS102' });
    expect(pinPad.state).toBe('disconnected');
    await expect(pinPad.status()).rejects.toMatchObject({ code: 'POS102' });
    // Reopen attempts fail (POS101) while unplugged …
    const refused = (await once(pinPad, 'warning')) as [{ code: string }];
    expect(refused[0].code).toBe('POS101');
    pad.replug();
    await once(pinPad, 'state');
    expect(pinPad.state).toBe('connected');
    expect(states).toEqual(['disconnected', 'connected']);
    await expect(pinPad.status()).resolves.toMatchObject({ model: 'VPP-100' });
  });

  it('close() rejects pending calls with POS102 and stops reconnecting', async () => {
    const { pad, pinPad } = await setup('mock');
    const pending = pinPad.readCard(readReq);
    await once(pad, 'message');
    await pinPad.close();
    await expect(pending).rejects.toMatchObject({ code: 'POS102' });
    await until(() => !pad.connected);
  });
});

describe('PinPad ⇄ virtual PIN pad over tcp://: disconnect', () => {
  it('a pad-side close is a disconnect (POS102) and the pad reconnects', async () => {
    const { pad, pinPad } = await setup(
      'tcp',
      {},
      { reconnect: { initialDelayMs: 5, maxDelayMs: 20 } },
    );
    const pending = pinPad.readCard({
      amountMinor: 1,
      currency: 'EUR',
      timeoutSeconds: 30,
      entryModes: ['C'],
    });
    await once(pad, 'message');
    pad.injectFault({ kind: 'unplug' });
    await expect(pending).rejects.toMatchObject({ code: 'POS102' });
    pad.replug();
    // pad.connected: a live (not refused) connection exists, so the old one was already closed.
    await until(() => pad.connected && pinPad.state === 'connected');
    await expect(pinPad.status()).resolves.toMatchObject({ model: 'VPP-100' });
  });
});

describe('PinPad ⇄ virtual PIN pad over a real pty (socat)', () => {
  it.skipIf(!socat)(
    'the pty path can be opened again after the agent closed it',
    async () => {
      const pad = new VirtualPinPad();
      const server = await servePty(pad);
      cleanups.push(() => server.stop());
      const boundary = new CardBoundary({ tokenKey, vaultPublicKey: vault.publicKey });
      for (let round = 0; round < 2; round++) {
        // socat starts again after each close. Until the old socat has exited, the link may still
        // point at the old pty: the open fails, or it succeeds on a pty whose socat is going away,
        // so the pad never answers on it. Either way: close and open again, a bounded number of times.
        let opened: PinPad | undefined;
        for (let attempt = 1; opened === undefined; attempt++) {
          if (attempt > 10) throw new Error(`round ${round}: the pty never led to the pad`);
          const candidate = await PinPad.open({
            transport: createTransport(server.url),
            boundary,
            reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
          }).catch(() => undefined);
          if (
            candidate !== undefined &&
            (await within(3000, () => pad.connected && candidate.state === 'connected'))
          ) {
            opened = candidate;
            break;
          }
          await candidate?.close();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await expect(opened.status()).resolves.toMatchObject({ model: 'VPP-100' });
        await opened.close();
        if (!(await within(10_000, () => !pad.connected)))
          throw new Error(
            `round ${round}: socat kept the pad's TCP link after the agent closed the pty`,
          );
      }
      expect(pad.received.map((m) => m.id)).toEqual(['00', '00']);
    },
    60_000,
  );
});
