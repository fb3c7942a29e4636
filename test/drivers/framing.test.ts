import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import {
  ACK,
  EOT,
  ETX,
  FrameDecoder,
  NAK,
  STX,
  computeLrc,
  encodeFrame,
} from '../../drivers/link/framing.js';
import {
  CANCELED_FRAME,
  STATUS_REPLY_FRAME,
  STATUS_REQUEST_FRAME,
} from '../fixtures/link-traces.js';

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('encodeFrame', () => {
  it('builds STX payload ETX LRC as in the recorded traces', () => {
    expect([...encodeFrame(ascii('00'))]).toEqual(STATUS_REQUEST_FRAME);
    expect([...encodeFrame(ascii('41'))]).toEqual(CANCELED_FRAME);
    expect([...encodeFrame(ascii('01\x1cM\x1cS\x1cF\x1cPIN'))]).toEqual(STATUS_REPLY_FRAME);
  });

  it('computes the LRC over payload and ETX, not STX', () => {
    expect(computeLrc(ascii('A'))).toBe(0x41 ^ ETX);
    expect(computeLrc(ascii('AB'))).toBe(0x41 ^ 0x42 ^ ETX);
  });

  it.each([
    ['empty payload', Buffer.alloc(0)],
    ['payload of 1025 bytes', Buffer.alloc(1025, 0x41)],
    ['control byte in payload', Buffer.of(0x41, STX, 0x42)],
  ])('refuses %s with POS110', (_name, payload) => {
    let error: unknown;
    try {
      encodeFrame(payload);
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS110')).toBe(true);
  });

  it('accepts exactly 1024 bytes', () => {
    expect(encodeFrame(Buffer.alloc(1024, 0x41)).length).toBe(1027);
  });
});

describe('FrameDecoder', () => {
  it('decodes a frame whose LRC equals ACK (0x06) without mistaking it for an ACK', () => {
    const decoder = new FrameDecoder();
    const out = decoder.push(Buffer.from(CANCELED_FRAME), 0);
    expect(out).toEqual([{ kind: 'frame', payload: ascii('41') }]);
  });

  it('decodes a frame whose LRC equals STX (0x02) and then the next frame', () => {
    // 'A' ^ '@' ^ ETX = 0x02
    const frame = encodeFrame(ascii('A@'));
    expect(frame[frame.length - 1]).toBe(STX);
    const decoder = new FrameDecoder();
    const out = decoder.push(Buffer.concat([frame, encodeFrame(ascii('00'))]), 0);
    expect(out).toEqual([
      { kind: 'frame', payload: ascii('A@') },
      { kind: 'frame', payload: ascii('00') },
    ]);
  });

  it('decodes a frame whose LRC equals NAK, EOT and ETX', () => {
    for (const target of [NAK, EOT, ETX]) {
      // payload "0X" where '0' ^ X ^ ETX = target
      const payload = Buffer.of(0x30, 0x30 ^ ETX ^ target);
      const frame = encodeFrame(payload);
      expect(frame[frame.length - 1]).toBe(target);
      expect(new FrameDecoder().push(frame, 0)).toEqual([{ kind: 'frame', payload }]);
    }
  });

  it('reports a bad LRC as bad-frame lrc', () => {
    const frame = encodeFrame(ascii('00'));
    frame.writeUInt8(frame.readUInt8(frame.length - 1) ^ 0xff, frame.length - 1);
    expect(new FrameDecoder().push(frame, 0)).toEqual([{ kind: 'bad-frame', reason: 'lrc' }]);
  });

  it('reports an over-long payload once, after its ETX and LRC', () => {
    const long = Buffer.concat([Buffer.of(STX), Buffer.alloc(1100, 0x41), Buffer.of(ETX, ACK)]);
    const decoder = new FrameDecoder();
    // The trailing LRC byte happens to be 0x06: it must not come out as an ACK.
    expect(decoder.push(long, 0)).toEqual([{ kind: 'bad-frame', reason: 'too-long' }]);
    expect(decoder.push(encodeFrame(ascii('00')), 1)).toEqual([
      { kind: 'frame', payload: ascii('00') },
    ]);
  });

  it('reports an inter-byte gap above the timeout and resynchronises', () => {
    const decoder = new FrameDecoder({ interByteTimeoutMs: 500 });
    const frame = encodeFrame(ascii('00'));
    expect(decoder.push(frame.subarray(0, 2), 1000)).toEqual([]);
    // 500 ms is still within the limit …
    expect(decoder.push(frame.subarray(2, 3), 1500)).toEqual([]);
    // … 501 ms is not: the frame is bad; its ETX and LRC are garbage now.
    expect(decoder.push(frame.subarray(3), 2001)).toEqual([
      { kind: 'bad-frame', reason: 'inter-byte-timeout' },
      { kind: 'discarded', count: 2 },
    ]);
    expect(decoder.push(frame, 2002)).toEqual([{ kind: 'frame', payload: ascii('00') }]);
  });

  it('expire() ends a stalled frame without new bytes', () => {
    const decoder = new FrameDecoder({ interByteTimeoutMs: 500 });
    decoder.push(Buffer.of(STX, 0x30), 0);
    expect(decoder.expire(500)).toEqual([]);
    expect(decoder.expire(501)).toEqual([{ kind: 'bad-frame', reason: 'inter-byte-timeout' }]);
    expect(decoder.inFrame).toBe(false);
  });

  it('counts garbage outside frames and passes ACK/NAK/EOT', () => {
    const decoder = new FrameDecoder();
    const out = decoder.push(
      Buffer.concat([ascii('xyz'), Buffer.of(ACK), ascii('!!'), Buffer.of(NAK, EOT)]),
      0,
    );
    expect(out).toEqual([
      { kind: 'discarded', count: 3 },
      { kind: 'ack' },
      { kind: 'discarded', count: 2 },
      { kind: 'nak' },
      { kind: 'eot' },
    ]);
    expect(decoder.discardedTotal).toBe(5);
  });

  it('reports a control byte inside a payload as bad-byte', () => {
    const bytes = Buffer.of(STX, 0x30, 0x07, 0x30, ETX, 0x30 ^ 0x07 ^ 0x30 ^ ETX);
    expect(new FrameDecoder().push(bytes, 0)).toEqual([{ kind: 'bad-frame', reason: 'bad-byte' }]);
  });

  it('restarts on an STX inside a payload', () => {
    const bytes = Buffer.concat([Buffer.of(STX, 0x31), encodeFrame(ascii('00'))]);
    expect(new FrameDecoder().push(bytes, 0)).toEqual([
      { kind: 'bad-frame', reason: 'bad-byte' },
      { kind: 'frame', payload: ascii('00') },
    ]);
  });

  it('decodes a frame split into single bytes', () => {
    const decoder = new FrameDecoder();
    const out = [...Buffer.from(STATUS_REPLY_FRAME)].flatMap((b, i) =>
      decoder.push(Buffer.of(b), i),
    );
    expect(out).toEqual([{ kind: 'frame', payload: ascii('01\x1cM\x1cS\x1cF\x1cPIN') }]);
  });

  it('never throws and always returns on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uint8Array({ maxLength: 2000 }), fc.nat({ max: 2000 })), {
          maxLength: 20,
        }),
        (chunks) => {
          const decoder = new FrameDecoder({ interByteTimeoutMs: 500 });
          let now = 0;
          let outputs = 0;
          let inputBytes = 0;
          for (const [bytes, gap] of chunks) {
            now += gap;
            inputBytes += bytes.length;
            const out = decoder.push(bytes, now);
            outputs += out.length;
            for (const o of out)
              if (o.kind === 'frame') expect(o.payload.length).toBeLessThanOrEqual(1024);
            outputs += decoder.expire(now + 1000).length;
          }
          // Output is bounded by input: the decoder cannot spin on its own.
          expect(outputs).toBeLessThanOrEqual(2 * inputBytes + 2 * chunks.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('round-trips any valid payload (property)', () => {
    const payloadByte = fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.constant(0x1c));
    fc.assert(
      fc.property(fc.array(payloadByte, { minLength: 1, maxLength: 1024 }), (bytes) => {
        const payload = Buffer.from(bytes);
        expect(new FrameDecoder().push(encodeFrame(payload), 0)).toEqual([
          { kind: 'frame', payload },
        ]);
      }),
      { numRuns: 200 },
    );
  });
});
