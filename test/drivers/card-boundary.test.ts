import { Buffer } from 'node:buffer';
import { createHmac } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { base32Lower } from '../../drivers/boundary/base32.js';
import { BIN_TABLE, brandOfPan } from '../../drivers/boundary/bin-table.js';
import { CardBoundary, luhnValidBytes } from '../../drivers/boundary/card-boundary.js';
import { openSealedCard } from '../../drivers/boundary/sealed-card.js';
import { parseTrack1, parseTrack2 } from '../../drivers/boundary/track-parser.js';
import { TEST_CARDS, buildEmvTlv, buildTrack1, buildTrack2 } from '../../simulator/test-cards.js';
import { FakeClock } from '../helpers/fake-clock.js';

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const tokenKey = Buffer.alloc(32, 7);
const vault = nacl.box.keyPair();

function boundary(opts: Partial<ConstructorParameters<typeof CardBoundary>[0]> = {}): CardBoundary {
  return new CardBoundary({
    tokenKey,
    vaultPublicKey: vault.publicKey,
    clock: new FakeClock(),
    ...opts,
  });
}

/** A Luhn-valid PAN of `length` digits starting with `prefix`. */
function withLuhn(prefix: string, length: number): string {
  const body = prefix.padEnd(length - 1, '0');
  for (let d = 0; d <= 9; d++) if (luhnValidBytes(ascii(body + d))) return body + d;
  throw new Error('unreachable');
}

describe('Luhn and track parsing', () => {
  it('checks Luhn on bytes (ISO/IEC 7812-1 Annex B)', () => {
    for (const card of TEST_CARDS) expect(luhnValidBytes(ascii(card.pan))).toBe(true);
    expect(luhnValidBytes(ascii('4111111111111112'))).toBe(false);
    expect(luhnValidBytes(ascii('41111111111111a1'))).toBe(false);
  });

  it('parses track 2 with and without sentinels, and track 1 format B', () => {
    const withSentinels = parseTrack2(
      buildTrack2('4111111111111111', { expiry: '2812', serviceCode: '201' }),
    );
    expect(withSentinels).toMatchObject({
      ok: true,
      track: { expiryYY: 28, expiryMM: 12, serviceCode: 201 },
    });
    if (withSentinels.ok) expect(withSentinels.track.pan).toEqual(ascii('4111111111111111'));
    expect(parseTrack2(buildTrack2('4111111111111111', { sentinels: false })).ok).toBe(true);
    const t1 = parseTrack1(buildTrack1('4111111111111111', 'DOE/JANE'));
    expect(t1).toMatchObject({ ok: true, track: { expiryYY: 30, expiryMM: 12, serviceCode: 101 } });
    if (t1.ok) expect(t1.track.name).toEqual(ascii('DOE/JANE'));
  });

  it('names failed reads', () => {
    expect(parseTrack2(ascii(';E?'))).toEqual({ ok: false, reason: 'bad_read' });
    expect(parseTrack1(ascii('%E?'))).toEqual({ ok: false, reason: 'bad_read' });
    expect(parseTrack2(ascii('garbage'))).toEqual({ ok: false, reason: 'no_start_sentinel' });
    expect(parseTrack2(ascii(';4111111111111111=30?'))).toEqual({ ok: false, reason: 'bad_read' });
  });
});

describe('BIN table', () => {
  it.each([
    ['visa', '4', 16],
    ['mastercard', '51', 16],
    ['mastercard', '55', 16],
    ['mastercard', '2221', 16],
    ['mastercard', '2720', 16],
    ['amex', '34', 15],
    ['amex', '37', 15],
    ['discover', '6011', 16],
    ['discover', '644', 16],
    ['discover', '649', 16],
    ['discover', '65', 16],
    ['jcb', '3528', 16],
    ['jcb', '3589', 16],
    ['diners', '300', 14],
    ['diners', '305', 14],
    ['diners', '36', 14],
    ['diners', '38', 14],
    ['diners', '39', 14],
    ['unionpay', '62', 16],
  ])('%s for prefix %s', (brand, prefix, length) => {
    expect(brandOfPan(ascii(withLuhn(prefix, length)))).toBe(brand);
  });

  it.each(['2220', '2721', '3527', '3590', '306', '643', '60', '1'])(
    'unknown for prefix %s',
    (prefix) => {
      expect(brandOfPan(ascii(withLuhn(prefix, 16)))).toBe('unknown');
    },
  );

  it('covers every row of the table', () => {
    expect(new Set(BIN_TABLE.map((r) => r.brand))).toEqual(
      new Set(['visa', 'mastercard', 'amex', 'discover', 'jcb', 'diners', 'unionpay']),
    );
  });

  it('gives the brand of every architecture.md §7 test card', () => {
    for (const card of TEST_CARDS) expect(brandOfPan(ascii(card.pan))).toBe(card.brand);
  });
});

describe('CardBoundary', () => {
  it('tokenizes a swipe: token = tok_ + base32(HMAC-SHA-256(key, PAN)[0..20])', () => {
    const result = boundary().tokenize({
      entryMode: 'swipe',
      track2: buildTrack2('4111111111111111'),
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const expected = `tok_${base32Lower(createHmac('sha256', tokenKey).update('4111111111111111').digest().subarray(0, 20))}`;
    expect(result.card).toMatchObject({
      token: expected,
      brand: 'visa',
      first6: '411111',
      last4: '1111',
      expiryMonth: 12,
      expiryYear: 2030,
      entryMode: 'swipe',
    });
    expect(result.card.token).toMatch(/^tok_[a-z2-7]{32}$/);
    expect(result.card.cardholderName).toBeUndefined();
  });

  it('gives the same token for the same card and key, another for another key', () => {
    const a = boundary().tokenize({ entryMode: 'swipe', track2: buildTrack2('5555555555554444') });
    const b = boundary().tokenize({ entryMode: 'chip', emvTlv: buildEmvTlv('5555555555554444') });
    const c = boundary({ tokenKey: Buffer.alloc(32, 8) }).tokenize({
      entryMode: 'swipe',
      track2: buildTrack2('5555555555554444'),
    });
    expect(a.ok && b.ok && c.ok).toBe(true);
    if (!a.ok || !b.ok || !c.ok) return;
    expect(a.card.token).toBe(b.card.token);
    expect(c.card.token).not.toBe(a.card.token);
  });

  it('seals PAN, expiry and track 2 so that only the vault secret key opens them', () => {
    const result = boundary().tokenize({
      entryMode: 'swipe',
      track2: buildTrack2('378282246310005', { expiry: '2905' }),
    });
    if (!result.ok) throw new Error(result.reason);
    const sealed = result.card.sealed ?? '';
    expect(findPanShapedRuns(sealed)).toEqual([]);
    expect(Buffer.from(sealed, 'base64').length).toBeGreaterThan(32 + 24 + 16);
    expect(openSealedCard(sealed, vault.secretKey)).toEqual({
      panDigits: '378282246310005',
      expiry: '2905',
      track2: '378282246310005=290510100000000',
    });
    let error: unknown;
    try {
      openSealedCard(sealed, nacl.box.keyPair().secretKey);
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS134')).toBe(true);
    expect(String((error as Error).message)).not.toContain('378282246310005');
  });

  it('uses a fresh ephemeral key per card (two seals of one card differ)', () => {
    const one = boundary().tokenize({
      entryMode: 'swipe',
      track2: buildTrack2('4111111111111111'),
    });
    const two = boundary().tokenize({
      entryMode: 'swipe',
      track2: buildTrack2('4111111111111111'),
    });
    if (!one.ok || !two.ok) throw new Error('read failed');
    expect(one.card.sealed?.slice(0, 43)).not.toBe(two.card.sealed?.slice(0, 43));
  });

  it('seals the EMV allow-list and drops vendor-private tags for a chip read', () => {
    const result = boundary().tokenize({
      entryMode: 'chip',
      emvTlv: buildEmvTlv('6011111111111117'),
    });
    if (!result.ok) throw new Error(result.reason);
    const opened = openSealedCard(result.card.sealed ?? '', vault.secretKey);
    expect(opened.panDigits).toBe('6011111111111117');
    expect(Object.keys(opened.emvTagsHex ?? {}).sort()).toEqual(
      ['5F2A', '5F34', '82', '95', '9A', '9C', '9F02', '9F26', '9F27', '9F36', '9F37'].sort(),
    );
    expect(result.card.brand).toBe('discover');
  });

  it('zeroes every raw input buffer after tokenization, on success and on failure', () => {
    const track1 = buildTrack1('4012888888881881');
    const track2 = buildTrack2('4012888888881881');
    const emvTlv = buildEmvTlv('4012888888881881');
    expect(boundary().tokenize({ entryMode: 'swipe', track1, track2, emvTlv }).ok).toBe(true);
    for (const b of [track1, track2, emvTlv]) expect(b.every((x) => x === 0)).toBe(true);

    const bad = buildTrack2('4111111111111112');
    expect(boundary().tokenize({ entryMode: 'swipe', track2: bad })).toMatchObject({
      ok: false,
      reason: 'invalid_pan',
    });
    expect(bad.every((x) => x === 0)).toBe(true);
  });

  it('answers chip_required for service code 201 on a swipe unless fallback is allowed', () => {
    const read = (): Buffer => buildTrack2('4111111111111111', { serviceCode: '201' });
    const refused = boundary().tokenize({ entryMode: 'swipe', track2: read() });
    expect(refused).toMatchObject({ ok: false, reason: 'chip_required' });
    if (!refused.ok) expect(refused.error.code).toBe('POS133');
    expect(
      boundary({ allowFallbackSwipe: true }).tokenize({ entryMode: 'swipe', track2: read() }).ok,
    ).toBe(true);
    expect(
      boundary().tokenize({
        entryMode: 'swipe',
        track2: buildTrack2('4111111111111111', { serviceCode: '601' }),
      }),
    ).toMatchObject({ ok: false, reason: 'chip_required' });
  });

  it('refuses invalid PANs (Luhn, length) with POS130 and no card data in the message', () => {
    for (const pan of ['4111111111111112', '41111111111', '41111111111111111111']) {
      const result = boundary().tokenize({ entryMode: 'swipe', track2: ascii(`;${pan}=3012101?`) });
      expect(result).toMatchObject({ ok: false });
      if (result.ok) continue;
      expect(['invalid_pan', 'bad_read']).toContain(result.reason);
      expect(result.error.message).not.toContain(pan);
    }
    const luhn = boundary().tokenize({
      entryMode: 'swipe',
      track2: buildTrack2('4111111111111112'),
    });
    expect(luhn).toMatchObject({ ok: false, reason: 'invalid_pan', error: { code: 'POS130' } });
  });

  it('refuses an expired card (POS131) and accepts it through its last month', () => {
    // FakeClock starts at 2026-11-21.
    expect(
      boundary().tokenize({
        entryMode: 'swipe',
        track2: buildTrack2('4111111111111111', { expiry: '2610' }),
      }),
    ).toMatchObject({ ok: false, reason: 'expired', error: { code: 'POS131' } });
    expect(
      boundary().tokenize({
        entryMode: 'swipe',
        track2: buildTrack2('4111111111111111', { expiry: '2611' }),
      }).ok,
    ).toBe(true);
  });

  it('keeps the cardholder name only when allowed', () => {
    const read = (): { entryMode: 'swipe'; track1: Buffer; track2: Buffer } => ({
      entryMode: 'swipe',
      track1: buildTrack1('4111111111111111', 'DOE/JANE'),
      track2: buildTrack2('4111111111111111'),
    });
    const off = boundary().tokenize(read());
    const on = boundary({ allowCardholderName: true }).tokenize(read());
    expect(off.ok && off.card.cardholderName).toBe(undefined);
    expect(on.ok && on.card.cardholderName).toBe('DOE/JANE');
  });

  it('passes SRED data through unopened with a token derived from the ciphertext', () => {
    const read = {
      entryMode: 'chip' as const,
      maskedPan: '411111******1111',
      expiry: '3012',
      ksnHex: 'FFFF9876543210E00001',
      ciphertextHex: 'A1B2C3D4E5F60718',
    };
    const a = boundary().tokenizeSred(read);
    const b = boundary().tokenizeSred({ ...read, ksnHex: 'FFFF9876543210E00002' });
    if (!a.ok || !b.ok) throw new Error('sred failed');
    expect(a.card).toMatchObject({
      brand: 'visa',
      first6: '411111',
      last4: '1111',
      sred: { ksnHex: read.ksnHex, ciphertextHex: read.ciphertextHex },
    });
    expect(a.card.sealed).toBeUndefined();
    expect(a.card.token).toMatch(/^tok_[a-z2-7]{32}$/);
    expect(a.card.token).not.toBe(b.card.token);
    expect(boundary().tokenizeSred({ ...read, ciphertextHex: 'XYZ' })).toMatchObject({
      ok: false,
      reason: 'bad_read',
    });
  });

  it('refuses keys of the wrong size with POS135', () => {
    expect(
      () => new CardBoundary({ tokenKey: Buffer.alloc(8), vaultPublicKey: vault.publicKey }),
    ).toThrow(/POS135/);
    expect(() => new CardBoundary({ tokenKey, vaultPublicKey: Buffer.alloc(31) })).toThrow(
      /POS135/,
    );
  });
});
