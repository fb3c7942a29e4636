import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAgentError, type AgentError } from '../../common/agent-error.js';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { classifyEmvTag, parseEmvTlv } from '../../drivers/boundary/emv-tags.js';
import { parseTrack1, parseTrack2 } from '../../drivers/boundary/track-parser.js';
import {
  decodeTrace,
  maskPanDigits,
  parseHexTrace,
  TRACE_KINDS,
} from '../../drivers/decode/decode-trace.js';
import { encodeHidMsrReport, parseHidMsrReport } from '../../drivers/readers/hid-msr-report.js';
import { encodeWedgeReports, WedgeDecoder } from '../../drivers/readers/keyboard-wedge.js';
import { splitSwipeText } from '../../drivers/readers/swipe-text.js';
import { buildTrack1, buildTrack2, TEST_PANS } from '../../simulator/test-cards.js';
import {
  CARD_READ_FAILED_FRAME,
  EMV_TLV,
  ONE_TRACK_HID_MSR_HEADER,
  VISA_HID_MSR_HEADER,
  VISA_TRACK1,
  VISA_TRACK2,
  visaHidMsrReport,
  visaSerialLine,
  WEDGE_PERCENT,
  WEDGE_SHORT_SWIPE,
} from '../fixtures/reader-traces.js';

const VISA = '4111111111111111';

function noPanIn(text: string): void {
  for (const pan of TEST_PANS) expect(text).not.toContain(pan);
  expect(findPanShapedRuns(text)).toEqual([]);
}

function errorsHaveNoPan(errors: AgentError[]): void {
  for (const e of errors) {
    expect(isAgentError(e)).toBe(true);
    noPanIn(e.message);
    noPanIn(JSON.stringify(e.details ?? {}));
  }
}

describe('fixtures against the simulator codecs', () => {
  it('the simulator builds exactly the annotated track bytes', () => {
    expect([...buildTrack2(VISA)]).toEqual(VISA_TRACK2);
    expect([...buildTrack1(VISA)]).toEqual(VISA_TRACK1);
  });

  it('encodeHidMsrReport builds the annotated 337-byte report', () => {
    const report = encodeHidMsrReport([buildTrack1(VISA), buildTrack2(VISA), undefined]);
    expect(report.length).toBe(337);
    expect([...report]).toEqual(visaHidMsrReport());
    expect([...report.subarray(0, 7)]).toEqual(VISA_HID_MSR_HEADER);
    const oneTrack = encodeHidMsrReport([{ status: 1 }, buildTrack2(VISA), undefined]);
    expect([...oneTrack.subarray(0, 7)]).toEqual(ONE_TRACK_HID_MSR_HEADER);
  });

  it('encodeWedgeReports types the annotated key codes', () => {
    expect(Buffer.concat(encodeWedgeReports(Buffer.from(';41=?')))).toEqual(
      Buffer.from(WEDGE_SHORT_SWIPE),
    );
    expect([...Buffer.concat(encodeWedgeReports(Buffer.from('%'))).subarray(0, 16)]).toEqual(
      WEDGE_PERCENT,
    );
  });
});

describe('HID MSR report parser', () => {
  it('returns both tracks of the fixture as views', () => {
    const parsed = parseHidMsrReport(Buffer.from(visaHidMsrReport()));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect([...(parsed.report.track1 ?? [])]).toEqual(VISA_TRACK1);
    expect([...(parsed.report.track2 ?? [])]).toEqual(VISA_TRACK2);
    expect(parsed.report.track3).toBeUndefined();
    expect(parsed.report.lengths).toEqual([51, 34, 0]);
  });

  it('drops a track whose status is not 0 (one good track is enough)', () => {
    const parsed = parseHidMsrReport(
      encodeHidMsrReport([{ status: 1 }, buildTrack2(VISA), undefined]),
    );
    expect(
      parsed.ok && parsed.report.track1 === undefined && parsed.report.track2 !== undefined,
    ).toBe(true);
  });

  it('accepts a leading report ID 0 (hidapi on Windows) and refuses other sizes with POS140', () => {
    expect(parseHidMsrReport(Buffer.from([0, ...visaHidMsrReport()])).ok).toBe(true);
    const bad = parseHidMsrReport(Buffer.alloc(64));
    expect(!bad.ok && bad.error.code).toBe('POS140');
    const long = Buffer.from(visaHidMsrReport());
    long[3] = 111;
    const tooLong = parseHidMsrReport(long);
    expect(!tooLong.ok && tooLong.error.code).toBe('POS140');
  });

  it('fuzz: any bytes give a result or POS140, never a throw', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }),
          fc.uint8Array({ minLength: 337, maxLength: 337 }),
        ),
        (bytes) => {
          const r = parseHidMsrReport(Buffer.from(bytes));
          if (!r.ok) {
            expect(r.error.code).toBe('POS140');
            errorsHaveNoPan([r.error]);
          } else for (const l of r.report.lengths) expect(l).toBeLessThanOrEqual(110);
        },
      ),
    );
  });
});

describe('keyboard-wedge decoder', () => {
  it('decodes the fixture to ;41=? and wipes its buffer', () => {
    const d = new WedgeDecoder();
    const out = [];
    for (let i = 0; i < WEDGE_SHORT_SWIPE.length; i += 8)
      out.push(...d.push(Buffer.from(WEDGE_SHORT_SWIPE.slice(i, i + 8))));
    expect(out).toHaveLength(1);
    expect(out[0]?.kind === 'swipe' && out[0].text.toString('latin1')).toBe(';41=?');
    expect(d.pendingLength).toBe(0);
  });

  it('round-trips a whole swipe through encodeWedgeReports (shift, ^, /, digits)', () => {
    const text = Buffer.concat([buildTrack1(VISA), buildTrack2(VISA)]);
    const d = new WedgeDecoder();
    const swipes = encodeWedgeReports(text).flatMap((r) => d.push(r));
    expect(swipes).toHaveLength(1);
    expect(swipes[0]?.kind === 'swipe' && swipes[0].text.equals(text)).toBe(true);
  });

  it('a repeated key without release counts once; a report of the wrong size is POS141', () => {
    const d = new WedgeDecoder();
    d.push(Buffer.of(0, 0, 0x1e, 0, 0, 0, 0, 0));
    d.push(Buffer.of(0, 0, 0x1e, 0, 0, 0, 0, 0));
    const out = d.push(Buffer.of(0, 0, 0x28, 0, 0, 0, 0, 0));
    expect(out[0]?.kind === 'swipe' && out[0].text.toString('latin1')).toBe('1');
    const bad = d.push(Buffer.alloc(5));
    expect(bad[0]?.kind === 'error' && bad[0].error.code).toBe('POS141');
  });

  it('fuzz: arbitrary reports never throw; outputs are swipes or POS141', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 10 }), { maxLength: 200 }), (reports) => {
        const d = new WedgeDecoder();
        for (const r of reports)
          for (const o of d.push(Buffer.from(r))) {
            if (o.kind === 'error') {
              expect(o.error.code).toBe('POS141');
              errorsHaveNoPan([o.error]);
            } else expect(o.text.length).toBeLessThanOrEqual(512);
          }
      }),
    );
  });
});

describe('swipe text and ISO/IEC 7813 tracks', () => {
  it('splits the serial line fixture into track 1 and track 2', () => {
    const t = splitSwipeText(Buffer.from(visaSerialLine()));
    expect([...(t.track1 ?? [])]).toEqual(VISA_TRACK1);
    expect([...(t.track2 ?? [])]).toEqual(VISA_TRACK2);
    expect(t.strayBytes).toBe(0);
  });

  it('names the failures: bad_read for ;E?, no_start_sentinel for a reversed swipe', () => {
    expect(parseTrack2(Buffer.from(';E?'))).toEqual({ ok: false, reason: 'bad_read' });
    const reversed = Buffer.from([...VISA_TRACK2].reverse());
    expect(parseTrack2(reversed)).toMatchObject({ ok: false });
    expect(parseTrack1(Buffer.from('XB41^'))).toEqual({ ok: false, reason: 'no_start_sentinel' });
    const t = splitSwipeText(Buffer.from('4111?'));
    expect(t.track1 === undefined && t.track2 === undefined && t.strayBytes).toBe(5);
  });

  it('fuzz: splitSwipeText and both track parsers never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const b = Buffer.from(bytes);
        const t = splitSwipeText(b);
        for (const track of [t.track1, t.track2, t.track3])
          if (track) expect(b.includes(track)).toBe(true);
        parseTrack1(b);
        parseTrack2(b);
      }),
    );
  });
});

describe('EMV TLV allow-list', () => {
  it('parses the fixture: multi-byte tag, 81 length, 00/FF padding; classifies each tag', () => {
    const r = parseEmvTlv(Buffer.from(EMV_TLV));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.objects.map((o) => [o.tag, o.value.length, classifyEmvTag(o.tag)])).toEqual([
      ['9F26', 8, 'forward'],
      ['5A', 8, 'seal'],
      ['DF01', 2, 'drop'],
      ['95', 5, 'forward'],
    ]);
  });

  it('fuzz: arbitrary bytes give objects or POS143', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = parseEmvTlv(Buffer.from(bytes));
        if (!r.ok) {
          expect(r.error.code).toBe('POS143');
          errorsHaveNoPan([r.error]);
        }
      }),
    );
  });
});

describe('decode (pos-agent decode)', () => {
  const hex = (bytes: readonly number[]): Buffer => Buffer.from(Buffer.from(bytes).toString('hex'));

  it('masks PANs to first 6 / last 4', () => {
    expect(maskPanDigits(Buffer.from(VISA))).toBe('411111******1111');
    expect(maskPanDigits(Buffer.from('378282246310005'))).toBe('378282*****0005');
  });

  it('decodes a track trace with a masked PAN and no other card data', () => {
    const parsed = parseHexTrace(hex(visaSerialLine()));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const out = decodeTrace('track', parsed.bytes);
    const text = out.lines.join('\n');
    expect(out.errors).toEqual([]);
    expect(text).toContain('PAN 411111******1111 (16 digits, Luhn ok, brand visa)');
    expect(text).toContain('service code 101');
    expect(text).not.toContain('CARDHOLDER');
    noPanIn(text);
    expect(parsed.bytes.every((b) => b === 0)).toBe(true);
  });

  it('decodes a link trace with LRC checks, and a bad LRC as POS110 with expected/actual', () => {
    const good = decodeTrace('link', Buffer.from([0x06, ...CARD_READ_FAILED_FRAME]));
    expect(good.errors).toEqual([]);
    expect(good.lines).toEqual([
      'ACK',
      'frame 1: 11 payload bytes, LRC 0x3E ok',
      '  message 29 {"reason":"bad_read"}',
    ]);
    const bad: number[] = [...CARD_READ_FAILED_FRAME];
    bad[bad.length - 1] = 0x00;
    const out = decodeTrace('link', Buffer.from(bad));
    expect(out.errors.map((e) => e.code)).toEqual(['POS110']);
    expect(out.lines.join('\n')).toContain('LRC is 0x00, expected 0x3E');
  });

  it('decodes hid-msr, wedge and tlv fixtures with masked output', () => {
    const msr = decodeTrace('hid-msr', Buffer.from(visaHidMsrReport()));
    expect(msr.errors).toEqual([]);
    expect(msr.lines.join('\n')).toContain('track 2: PAN 411111******1111');
    const wedge = decodeTrace('wedge', Buffer.concat(encodeWedgeReports(Buffer.from(VISA_TRACK2))));
    expect(wedge.errors).toEqual([]);
    expect(wedge.lines.join('\n')).toContain('PAN 411111******1111');
    const tlv = decodeTrace('tlv', Buffer.from(EMV_TLV));
    expect(tlv.lines.join('\n')).toContain('5A   len   8 seal    PAN 411111******1111 (sealed)');
    expect(tlv.lines.join('\n')).toContain('DF01 len   2 drop');
    for (const o of [msr, wedge, tlv]) noPanIn(o.lines.join('\n'));
  });

  it('bad hex is POS142 and names the offset', () => {
    const r = parseHexTrace('02 3G');
    expect(!r.ok && r.error.code).toBe('POS142');
    expect(!r.ok && r.error.message).toContain('character 5');
    expect(parseHexTrace('0x02,0x30:30-03').ok).toBe(true);
  });

  it('fuzz: every kind, arbitrary bytes (and card-like bytes): lines without a PAN, coded errors, no throw', () => {
    const cardish = fc.constantFrom(
      ...[visaSerialLine(), visaHidMsrReport(), [...EMV_TLV], [...CARD_READ_FAILED_FRAME]].map(
        (a) => Uint8Array.from(a),
      ),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...TRACE_KINDS),
        fc.oneof(fc.uint8Array({ maxLength: 700 }), cardish),
        fc.nat({ max: 40 }),
        (kind, bytes, flip) => {
          const b = Buffer.from(bytes);
          if (flip < b.length) b[flip] = (b[flip] ?? 0) ^ 0x01;
          const out = decodeTrace(kind, b);
          noPanIn(out.lines.join('\n'));
          errorsHaveNoPan(out.errors);
          for (const e of out.errors) expect(e.code).toMatch(/^POS1\d\d$/);
        },
      ),
      { numRuns: 500 },
    );
  });
});
