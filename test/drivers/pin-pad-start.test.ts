/**
 * PinPad.create() + start() (issue 15): the agent's start-up no longer retries the first open with
 * its own hard-coded backoff; a pad absent at start is left `'disconnected'`, reported as a
 * `'warning'` POS101, and opened by the PinPad's own reconnect backoff once it appears. The
 * VirtualPinPad over mock://; the reconnect timers run on a fake clock (no sleeps).
 */
import { Buffer } from 'node:buffer';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentError } from '../../common/agent-error.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { PinPad, type PinPadState } from '../../drivers/pinpad/pin-pad.js';
import { createTransport } from '../../drivers/transport/transport.js';
import { serveMock } from '../../simulator/pad-server.js';
import { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { FakeClock } from '../helpers/fake-clock.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** Lets I/O settle (without timing anything) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

function absentPad(name: string, clock: FakeClock) {
  const pinPad = PinPad.create({
    transport: createTransport(`mock://${name}`),
    boundary: new CardBoundary({
      tokenKey: Buffer.alloc(32, 7),
      vaultPublicKey: nacl.box.keyPair().publicKey,
    }),
    clock,
    reconnect: { initialDelayMs: 500, maxDelayMs: 4000 },
  });
  const warnings: AgentError[] = [];
  const states: PinPadState[] = [];
  pinPad.on('warning', (w) => warnings.push(w));
  pinPad.on('state', (s) => states.push(s));
  cleanups.push(() => pinPad.close());
  return { pinPad, warnings, states };
}

describe('PinPad.start() with the pad absent', () => {
  it('resolves disconnected with a POS101 warning, retries with backoff, connects when the pad appears', async () => {
    const clock = new FakeClock();
    const name = `pin-pad-start-${process.pid}-1`;
    const { pinPad, warnings, states } = absentPad(name, clock);

    await pinPad.start();
    expect(pinPad.state).toBe('disconnected');
    expect(warnings.map((w) => w.code)).toEqual(['POS101']);
    // One reopen armed, at the first backoff delay.
    expect(clock.pendingTimers).toBe(1);
    clock.advance(499);
    await until(() => true);
    expect(warnings).toHaveLength(1);
    clock.advance(1);
    await until(() => warnings.length === 2);
    expect(warnings[1]?.code).toBe('POS101');

    // The pad appears; the next reopen (1 s later: the delay doubled) finds it.
    const server = serveMock(new VirtualPinPad(), name);
    cleanups.unshift(() => server.stop());
    clock.advance(1000);
    await until(() => pinPad.state === 'connected');
    expect(states).toEqual(['connected']);
    expect(clock.pendingTimers).toBe(0);
    const status = await pinPad.status();
    expect(status.model.length).toBeGreaterThan(0);
  });

  it('close() while absent stops the retries', async () => {
    const clock = new FakeClock();
    const { pinPad, warnings } = absentPad(`pin-pad-start-${process.pid}-2`, clock);
    await pinPad.start();
    await pinPad.close();
    expect(clock.pendingTimers).toBe(0);
    clock.advance(60_000);
    expect(warnings).toHaveLength(1);
  });
});
