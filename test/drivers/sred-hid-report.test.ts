/**
 * The project SRED HID report (drivers/readers/sred-hid-report.ts): the annotated byte trace
 * against what the virtual SRED reader sends and what the parser returns, the pass-through
 * through CardBoundary.tokenizeSred and the CardReader, the refusal of a "masked" track holding a
 * clear PAN, and fast-check fuzzing.
 */
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { CardReader } from '../../drivers/readers/card-reader.js';
import {
  encodeSredHidReport,
  parseSredHidReport,
  SRED_HID_REPORT_BYTES,
  sredReadOf,
} from '../../drivers/readers/sred-hid-report.js';
import { createTransport } from '../../drivers/transport/transport.js';
import { buildTrack1, buildTrack2, TEST_PANS } from '../../simulator/test-cards.js';
import {
  maskTrack,
  simulatorEncryptTrack,
  SIMULATOR_SRED_KSN,
  VirtualHidBackend,
  VirtualHidReader,
} from '../../simulator/virtual-hid-reader.js';
import { FakeClock } from '../helpers/fake-clock.js';
import {
  VISA_ENCRYPTED_TRACK1,
  VISA_ENCRYPTED_TRACK2,
  VISA_MASKED_TRACK1,
  VISA_MASKED_TRACK2,
  VISA_SRED_HEADER,
  VISA_SRED_KSN_AND_MASKED_LENGTHS,
  VISA_TRACK1,
  VISA_TRACK2,
  visaSredHidReport,
} from '../fixtures/reader-traces.js';

const VISA = '4111111111111111';
const hex = (bytes: readonly number[]): string => Buffer.from(bytes).toString('hex').toUpperCase();

function noPanIn(text: string): void {
  for (const pan of TEST_PANS) expect(text).not.toContain(pan);
  expect(findPanShapedRuns(text)).toEqual([]);
}

const boundary = (allowFallbackSwipe = false): CardBoundary =>
  new CardBoundary({
    tokenKey: Buffer.alloc(32, 9),
    vaultPublicKey: nacl.box.keyPair().publicKey,
    clock: new FakeClock(),
    allowFallbackSwipe,
  });

describe('SRED HID report: fixtures against the simulator', () => {
  it('masks and encrypts the tracks exactly as annotated', () => {
    expect([...maskTrack(buildTrack2(VISA))]).toEqual(VISA_MASKED_TRACK2);
    expect([...maskTrack(buildTrack1(VISA))]).toEqual(VISA_MASKED_TRACK1);
    expect([...simulatorEncryptTrack(Buffer.from(VISA_TRACK1))]).toEqual(VISA_ENCRYPTED_TRACK1);
    expect([...simulatorEncryptTrack(Buffer.from(VISA_TRACK2))]).toEqual(VISA_ENCRYPTED_TRACK2);
  });

  it("the virtual SRED reader's first swipe is the annotated 692-byte report; the KSN counter moves per swipe", () => {
    const reader = new VirtualHidReader({ mode: 'sred' });
    const report = reader.reportsFor('visa')[0] ?? Buffer.alloc(0);
    expect(report.length).toBe(SRED_HID_REPORT_BYTES);
    expect([...report]).toEqual(visaSredHidReport());
    expect([...report.subarray(0, 7)]).toEqual(VISA_SRED_HEADER);
    expect([...report.subarray(343, 356)]).toEqual(VISA_SRED_KSN_AND_MASKED_LENGTHS);
    const [second] = reader.reportsFor('visa');
    expect(second?.subarray(343, 353).toString('hex').toUpperCase()).toBe('FFFF9876543210E00002');
  });
});

describe('SRED HID report parser', () => {
  it('gives the masked PAN, expiry, service code, KSN and the encrypted track 2, unopened', () => {
    const parsed = parseSredHidReport(Buffer.from(visaSredHidReport()));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.report.status).toEqual([0, 0, 0]);
    expect(sredReadOf(parsed.report)).toEqual({
      ok: true,
      read: {
        entryMode: 'swipe',
        maskedPan: '411111******1111',
        expiry: '3012',
        serviceCode: '101',
        ksnHex: 'FFFF9876543210E00001',
        ciphertextHex: hex(VISA_ENCRYPTED_TRACK2),
      },
    });
  });

  it('one good track is enough: track 1 failed → track 2; track 2 failed → track 1 and its ciphertext', () => {
    const reader = new VirtualHidReader({ mode: 'sred' });
    const oneTrack = parseSredHidReport(reader.sredReportFor('visa', { fault: 'one_track' }));
    expect(oneTrack.ok && sredReadOf(oneTrack.report)).toMatchObject({
      ok: true,
      read: { ciphertextHex: hex(VISA_ENCRYPTED_TRACK2) },
    });
    const onlyTrack1 = encodeSredHidReport(
      [
        { masked: Buffer.from(VISA_MASKED_TRACK1), encrypted: Buffer.from(VISA_ENCRYPTED_TRACK1) },
        { status: 1 },
      ],
      SIMULATOR_SRED_KSN,
    );
    const parsed = parseSredHidReport(onlyTrack1);
    expect(parsed.ok && sredReadOf(parsed.report)).toMatchObject({
      ok: true,
      read: { maskedPan: '411111******1111', ciphertextHex: hex(VISA_ENCRYPTED_TRACK1) },
    });
  });

  it('names the failures: bad swipe and reversed swipe are bad_read (POS132), wrong size POS146, report ID 0 accepted', () => {
    const reader = new VirtualHidReader({ mode: 'sred' });
    for (const fault of ['bad_swipe', 'reversed'] as const) {
      const parsed = parseSredHidReport(reader.sredReportFor('visa', { fault }));
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) continue;
      const read = sredReadOf(parsed.report);
      expect(read.ok).toBe(false);
      if (!read.ok) expect(read.error.code).toBe('POS132');
    }
    const withId = Buffer.concat([Buffer.of(0), Buffer.from(visaSredHidReport())]);
    expect(parseSredHidReport(withId).ok).toBe(true);
    const short = parseSredHidReport(Buffer.alloc(691));
    expect(short.ok ? '' : short.error.code).toBe('POS146');
    const badBlock = Buffer.from(visaSredHidReport());
    badBlock[4] = 39; // encrypted track 2 length not whole TDES blocks
    const parsed = parseSredHidReport(badBlock);
    expect(parsed.ok ? '' : parsed.error.message).toMatch(/multiple of the 8-byte.*POS146/);
  });

  it('a "masked" track holding the clear PAN (reader masking off) is POS146, and the PAN is in no message', () => {
    const clear = encodeSredHidReport(
      [
        undefined,
        { masked: Buffer.from(VISA_TRACK2), encrypted: Buffer.from(VISA_ENCRYPTED_TRACK2) },
      ],
      SIMULATOR_SRED_KSN,
    );
    const parsed = parseSredHidReport(clear);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const read = sredReadOf(parsed.report);
    expect(read.ok).toBe(false);
    if (read.ok) return;
    expect(read.error.code).toBe('POS146');
    expect(read.error.message).toMatch(/masking/);
    noPanIn(read.error.message);
    noPanIn(JSON.stringify(read));
  });

  it('fuzz: arbitrary bytes and mutated reports give a read or a coded error, never a throw or a PAN', () => {
    const base = visaSredHidReport();
    const clearReport = [...base];
    clearReport.splice(468, VISA_TRACK2.length, ...VISA_TRACK2); // the clear track in the masked field
    const mutated = fc
      .tuple(
        fc.constantFrom(base, clearReport),
        fc.array(fc.tuple(fc.nat(SRED_HID_REPORT_BYTES - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 12,
        }),
      )
      .map(([report, edits]) => {
        const out = Buffer.from(report);
        for (const [at, value] of edits) out[at] = value;
        return out;
      });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 800 }).map((a) => Buffer.from(a)),
          fc
            .uint8Array({ minLength: SRED_HID_REPORT_BYTES, maxLength: SRED_HID_REPORT_BYTES })
            .map((a) => Buffer.from(a)),
          mutated,
        ),
        (bytes) => {
          const parsed = parseSredHidReport(bytes);
          if (!parsed.ok) {
            expect(isAgentError(parsed.error)).toBe(true);
            noPanIn(parsed.error.message);
            return;
          }
          const read = sredReadOf(parsed.report);
          if (read.ok) {
            expect(read.read.maskedPan).toMatch(/^\d{6}\*{2,9}\d{4}$/);
            // The KSN and ciphertext are opaque hex: a run of hex digits may look Luhn-valid
            // without being card data, so only the test PANs are looked for there.
            const { ksnHex, ciphertextHex, ...clearFields } = read.read;
            noPanIn(JSON.stringify(clearFields));
            for (const pan of TEST_PANS) expect(ksnHex + ciphertextHex).not.toContain(pan);
          } else {
            expect(['POS132', 'POS146']).toContain(read.error.code);
            noPanIn(read.error.message);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('SRED through the CardReader and the boundary', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function sredReader(allowFallbackSwipe = false) {
    const backend = new VirtualHidBackend();
    cleanups.push(backend.install());
    const device = backend.add(new VirtualHidReader({ mode: 'sred', serialNumber: 'TSRED' }));
    const reader = new CardReader({
      name: 'usb-sred',
      kind: 'hid-msr',
      transport: createTransport(device.hidPath),
      boundary: boundary(allowFallbackSwipe),
      reconnect: false,
    });
    cleanups.push(() => reader.close());
    await reader.start();
    return { device, reader };
  }

  it('a swipe gives a token carrying the KSN and ciphertext unopened, and no sealed data', async () => {
    const { device, reader } = await sredReader();
    const read = reader.read();
    expect(device.swipe('mastercard')).toBe(1);
    const sent = device.sent[0] ?? Buffer.alloc(0);
    const result = await read;
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.card).toMatchObject({
      brand: 'mastercard',
      first6: '555555',
      last4: '4444',
      entryMode: 'swipe',
      sred: {
        ksnHex: 'FFFF9876543210E00001',
        ciphertextHex: sent
          .subarray(119, 119 + (sent[4] ?? 0))
          .toString('hex')
          .toUpperCase(),
      },
    });
    expect(result.card.sealed).toBeUndefined();
    expect(result.card.token).toMatch(/^tok_[a-z2-7]{32}$/);
    noPanIn(JSON.stringify(result.card));
  });

  it('a swiped chip card (service code 201) is chip_required unless fallback swipe is allowed', async () => {
    const strict = await sredReader(false);
    const refused = strict.reader.read();
    strict.device.swipe('visa', { fault: 'chip_card' });
    expect(await refused).toEqual({ ok: false, reason: 'chip_required' });
  });

  it('fallback allowed: the chip card passes through; garbage is bad_read with a POS146 warning', async () => {
    const { device, reader } = await sredReader(true);
    const ok = reader.read();
    device.swipe('visa', { fault: 'chip_card' });
    expect((await ok).ok).toBe(true);
    const warnings: string[] = [];
    reader.on('warning', (w) => warnings.push(w.code));
    const garbage = reader.read();
    device.swipe('visa', { fault: 'garbage' });
    expect(await garbage).toEqual({ ok: false, reason: 'bad_read' });
    expect(warnings.length).toBe(1);
    expect(['POS132', 'POS146']).toContain(warnings[0]);
  });
});
