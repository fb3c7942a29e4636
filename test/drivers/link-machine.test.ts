import { Buffer } from 'node:buffer';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { systemClock } from '../../common/clock.js';
import { ACK, EOT, NAK, encodeFrame } from '../../drivers/link/framing.js';
import { LinkMachine, type LinkCommand } from '../../drivers/link/link-machine.js';
import { SerialLink } from '../../drivers/link/serial-link.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { STATUS_REQUEST_FRAME } from '../fixtures/link-traces.js';

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const writes = (commands: LinkCommand[]): string[] =>
  commands.flatMap((c) => (c.type === 'write' ? [c.what] : []));

describe('LinkMachine (pure)', () => {
  it('sends a frame, starts the ACK timer, and completes on ACK', () => {
    const m = new LinkMachine();
    const sent = m.handle({ type: 'send', payload: ascii('00') });
    expect(sent).toEqual([
      { type: 'write', what: 'frame', bytes: Buffer.from(STATUS_REQUEST_FRAME) },
      { type: 'start-timer', timer: 'ack', delayMs: 1000 },
    ]);
    expect(m.state.kind).toBe('awaiting-ack');
    expect(m.handle({ type: 'bytes', bytes: Buffer.of(ACK), nowMs: 10 })).toEqual([
      { type: 'stop-timer', timer: 'ack' },
      { type: 'sent', transmissions: 1 },
      { type: 'stop-timer', timer: 'inter-byte' },
    ]);
    expect(m.state.kind).toBe('idle');
  });

  it('resends on ACK timeout and fails with EOT after maxTransmissions', () => {
    const m = new LinkMachine({ maxTransmissions: 3 });
    m.handle({ type: 'send', payload: ascii('00') });
    expect(writes(m.handle({ type: 'timeout', timer: 'ack', nowMs: 1000 }))).toEqual(['frame']);
    expect(writes(m.handle({ type: 'timeout', timer: 'ack', nowMs: 2000 }))).toEqual(['frame']);
    const last = m.handle({ type: 'timeout', timer: 'ack', nowMs: 3000 });
    expect(last).toEqual([
      { type: 'write', what: 'eot', bytes: Buffer.of(EOT) },
      { type: 'fail', failure: { reason: 'ACK timeout' }, transmissions: 3 },
    ]);
    expect(m.state.kind).toBe('idle');
  });

  it('resends on NAK and fails with reason NAK when the last answer is a NAK', () => {
    const m = new LinkMachine({ maxTransmissions: 2 });
    m.handle({ type: 'send', payload: ascii('00') });
    const first = m.handle({ type: 'bytes', bytes: Buffer.of(NAK), nowMs: 1 });
    expect(writes(first)).toEqual(['frame']);
    expect(first).toContainEqual({ type: 'start-timer', timer: 'ack', delayMs: 1000 });
    const second = m.handle({ type: 'bytes', bytes: Buffer.of(NAK), nowMs: 2 });
    expect(second).toContainEqual({ type: 'fail', failure: { reason: 'NAK' }, transmissions: 2 });
    expect(writes(second)).toEqual(['eot']);
  });

  it('ACKs a valid frame and delivers it; NAKs a bad one', () => {
    const m = new LinkMachine();
    const good = m.handle({ type: 'bytes', bytes: encodeFrame(ascii('41')), nowMs: 0 });
    expect(good).toContainEqual({ type: 'write', what: 'ack', bytes: Buffer.of(ACK) });
    expect(good).toContainEqual({ type: 'deliver', payload: ascii('41') });
    const corrupt = encodeFrame(ascii('41'));
    corrupt.writeUInt8(corrupt.readUInt8(corrupt.length - 1) ^ 1, corrupt.length - 1);
    const bad = m.handle({ type: 'bytes', bytes: corrupt, nowMs: 1 });
    expect(bad).toContainEqual({ type: 'write', what: 'nak', bytes: Buffer.of(NAK) });
    expect(bad).toContainEqual({ type: 'bad-frame', reason: 'lrc' });
    expect(bad.some((c) => c.type === 'deliver')).toBe(false);
  });

  it('asks for an inter-byte timer inside a frame and NAKs when it fires', () => {
    const m = new LinkMachine({ interByteTimeoutMs: 500 });
    const partial = m.handle({ type: 'bytes', bytes: Buffer.of(0x02, 0x30), nowMs: 0 });
    expect(partial).toEqual([{ type: 'start-timer', timer: 'inter-byte', delayMs: 501 }]);
    expect(m.handle({ type: 'timeout', timer: 'inter-byte', nowMs: 501 })).toEqual([
      { type: 'write', what: 'nak', bytes: Buffer.of(NAK) },
      { type: 'bad-frame', reason: 'inter-byte-timeout' },
    ]);
  });

  it('ignores a stray ACK while idle', () => {
    const m = new LinkMachine();
    expect(m.handle({ type: 'bytes', bytes: Buffer.of(ACK), nowMs: 0 })).toEqual([
      { type: 'stop-timer', timer: 'inter-byte' },
    ]);
  });
});

/** A peer that records what the link wrote, as the far end of the wire. */
function recorder(): { wire: number[]; write: (b: Buffer) => void } {
  const wire: number[] = [];
  return { wire, write: (b) => void wire.push(...b) };
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('SerialLink over a fake clock', () => {
  it('retransmits on timeout, then sends EOT and rejects with POS111 "ACK timeout"', async () => {
    const clock = new FakeClock();
    const peer = recorder();
    const link = new SerialLink(peer.write, {
      clock,
      timings: { ackTimeoutMs: 1000, maxTransmissions: 3 },
    });
    const sent = link.send(ascii('00'));
    const failure = sent.catch((e: unknown) => e);
    await flush();
    clock.advance(999);
    await flush();
    expect(peer.wire).toEqual([...STATUS_REQUEST_FRAME]);
    clock.advance(1);
    await flush();
    clock.advance(1000);
    await flush();
    clock.advance(1000);
    await flush();
    expect(peer.wire).toEqual([
      ...STATUS_REQUEST_FRAME, // 1st transmission
      ...STATUS_REQUEST_FRAME, // after 1000 ms without ACK
      ...STATUS_REQUEST_FRAME, // after 2000 ms
      0x04, // EOT: gave up after maxTransmissions = 3
    ]);
    const error = await failure;
    expect(isAgentError(error, 'POS111')).toBe(true);
    expect((error as { details: unknown }).details).toEqual({
      reason: 'ACK timeout',
      transmissions: 3,
    });
    expect(link.stats.retransmissions).toBe(2);
  });

  it('retransmits after a NAK and resolves on the following ACK', async () => {
    const clock = new FakeClock();
    const peer = recorder();
    const link = new SerialLink(peer.write, { clock });
    const sent = link.send(ascii('00'));
    await flush();
    link.receive(Buffer.of(NAK));
    await flush();
    link.receive(Buffer.of(ACK));
    await expect(sent).resolves.toBeUndefined();
    expect(peer.wire).toEqual([...STATUS_REQUEST_FRAME, ...STATUS_REQUEST_FRAME]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('queues frames: the second goes out only after the first is ACKed', async () => {
    const clock = new FakeClock();
    const peer = recorder();
    const link = new SerialLink(peer.write, { clock });
    const a = link.send(ascii('00'));
    const b = link.send(ascii('40'));
    await flush();
    expect(peer.wire).toEqual([...STATUS_REQUEST_FRAME]);
    link.receive(Buffer.of(ACK));
    await a;
    await flush();
    expect(peer.wire.slice(STATUS_REQUEST_FRAME.length)).toEqual([...encodeFrame(ascii('40'))]);
    link.receive(Buffer.of(ACK));
    await b;
  });

  it('NAKs a bad frame and ACKs the good retransmission', async () => {
    const clock = new FakeClock();
    const peer = recorder();
    const link = new SerialLink(peer.write, { clock });
    const frames: Buffer[] = [];
    link.on('frame', (p) => frames.push(p));
    const bad = encodeFrame(ascii('41'));
    bad[bad.length - 1] = 0x00;
    link.receive(bad);
    link.receive(encodeFrame(ascii('41')));
    await flush();
    expect(peer.wire).toEqual([
      0x15, // NAK for the bad LRC
      0x06, // ACK for the good frame
    ]);
    expect(frames).toEqual([ascii('41')]);
  });

  it('rejects queued frames with POS112 on shutdown', async () => {
    const link = new SerialLink(() => undefined, { clock: new FakeClock() });
    const a = link.send(ascii('00'));
    const b = link.send(ascii('10'));
    link.shutdown();
    await expect(a).rejects.toMatchObject({ code: 'POS112' });
    await expect(b).rejects.toMatchObject({ code: 'POS112' });
  });
});

describe('SerialLink with vitest fake timers and the system clock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fails with reason NAK after three NAKs', async () => {
    vi.useFakeTimers();
    const peer = recorder();
    const link = new SerialLink(peer.write, { clock: systemClock });
    const result = link.send(ascii('00')).catch((e: unknown) => e);
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(10);
      link.receive(Buffer.of(NAK));
    }
    await vi.advanceTimersByTimeAsync(10);
    const error = await result;
    expect(isAgentError(error, 'POS111')).toBe(true);
    expect((error as { details: { reason: string } }).details.reason).toBe('NAK');
    expect(peer.wire.at(-1)).toBe(EOT);
    expect(vi.getTimerCount()).toBe(0);
  });
});
