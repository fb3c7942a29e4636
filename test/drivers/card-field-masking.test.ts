/**
 * Issue 11 item 5, the card-field leaks: `pos-agent decode --kind tlv` printed a full PAN when an
 * allow-listed primitive tag held it; POS121 quoted field values up to 16 characters; a
 * cardholder name with digits passed the reader and was refused only later by the store.
 */
import { Buffer } from 'node:buffer';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { decodeTrace, maskPanShapedHex } from '../../drivers/decode/decode-trace.js';
import { encodeFrame } from '../../drivers/link/framing.js';
import { decodeMessage } from '../../drivers/pinpad/messages.js';
import { buildTrack1, buildTrack2 } from '../../simulator/test-cards.js';

const PAN = '4111111111111111';
/** A primitive TLV: tag bytes, one-byte length, value. */
const tlv = (tag: number[], value: Buffer): Buffer => Buffer.from([...tag, value.length, ...value]);
/** Every way a PAN can show in decode output: digits, or hex of its ASCII bytes. */
const leaks = (text: string): boolean =>
  findPanShapedRuns(text).length > 0 ||
  text.includes(PAN) ||
  text.toUpperCase().includes(Buffer.from(PAN).toString('hex').toUpperCase());

describe('decode masks a PAN whatever tag holds it', () => {
  it.each([
    ['BCD in 9F26', tlv([0x9f, 0x26], Buffer.from(PAN, 'hex'))],
    [
      'BCD a nibble off, inside other digits, in 9F10',
      tlv([0x9f, 0x10], Buffer.from(`0${PAN}0000000`, 'hex')),
    ],
    ['ASCII in 9F10', tlv([0x9f, 0x10], Buffer.from(PAN, 'latin1'))],
    ['track 2 text in 84', tlv([0x84], Buffer.from(`${PAN}=30121010000`, 'latin1'))],
  ])('%s', (_name, bytes) => {
    const out = decodeTrace('tlv', Buffer.from(bytes)).lines.join('\n');
    expect(leaks(out)).toBe(false);
    // Shown, masked (hex of ASCII digits is itself a run of decimal digits: it may be masked
    // more widely than first 6 / last 4, which is fine for a tech's view).
    expect(out).toMatch(/ forward [0-9A-F]*\*+/);
  });

  it('keeps ordinary forwarded values readable (control)', () => {
    const out = decodeTrace('tlv', tlv([0x9f, 0x02], Buffer.from('000000001050', 'hex')));
    expect(out.lines.join('\n')).toContain('000000001050');
    expect(maskPanShapedHex(Buffer.from('0123456789ABCDEF', 'hex'))).toBe('0123456789ABCDEF');
  });

  it('masks a PAN in a display line of a link trace (message 10)', () => {
    const frame = encodeFrame(Buffer.from(`10\x1cCARD ${PAN}\x1cOK`, 'latin1'));
    const out = decodeTrace('link', Buffer.from(frame)).lines.join('\n');
    expect(out).toContain('411111');
    expect(leaks(out)).toBe(false);
  });
});

describe('POS121 never quotes a field value', () => {
  it('not even a short one that could be a name or digits', () => {
    for (const value of ['JANE DOE', '4111', 'x']) {
      let message = '';
      try {
        decodeMessage(Buffer.from(`29\x1c${value}`, 'latin1'));
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/POS121/);
      expect(message).not.toContain(value);
      expect(message).toContain(`${value.length} characters`);
    }
  });
});

describe('the boundary drops a cardholder name that holds digits', () => {
  const boundary = new CardBoundary({
    tokenKey: new Uint8Array(32).fill(3),
    vaultPublicKey: nacl.box.keyPair().publicKey,
    allowCardholderName: true,
  });
  it.each(['DOE/JANE 4111', `${PAN}`, 'DOE/J0HN'])('%s: card accepted, no name', (name) => {
    const result = boundary.tokenize({
      entryMode: 'swipe',
      track1: buildTrack1(PAN, name),
      track2: buildTrack2(PAN),
    });
    expect(result.ok).toBe(true);
    expect(result.ok && result.card.cardholderName).toBe(undefined);
  });
  it('keeps a name without digits (control)', () => {
    const result = boundary.tokenize({
      entryMode: 'swipe',
      track1: buildTrack1(PAN, 'DOE/JANE'),
      track2: buildTrack2(PAN),
    });
    expect(result.ok && result.card.cardholderName).toBe('DOE/JANE');
  });
});
