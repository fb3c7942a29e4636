import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { isAgentError } from '../../common/agent-error.js';
import { decodeMessage, encodeMessage, type PinPadMessage } from '../../drivers/pinpad/messages.js';
import { buildTrack2 } from '../../simulator/test-cards.js';

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isAgentError(error) ? error.code : 'not-an-agent-error';
  }
  return undefined;
}

describe('PIN pad messages (architecture.md §3.2)', () => {
  it.each<PinPadMessage>([
    { id: '00' },
    { id: '10', line1: 'EUR 12.50', line2: 'Insert or tap card' },
    {
      id: '20',
      amountMinor: 1250,
      currency: 'EUR',
      timeoutSeconds: 30,
      entryModes: ['S', 'C', 'T'],
    },
    { id: '30', amountMinor: 1250, currency: 'EUR', timeoutSeconds: 30 },
    { id: '40' },
    { id: '50', outcome: 'stored', text: 'Offline - payment stored' },
    { id: '01', model: 'VPP', serial: 'S1', firmware: '1.0', capabilities: ['MSR', 'PIN'] },
    {
      id: '22',
      entryMode: 'C',
      maskedPan: '411111******1111',
      expiry: '3012',
      ksnHex: 'AB01',
      ciphertextHex: 'CD02',
    },
    { id: '29', reason: 'chip_required' },
    { id: '31', format: 4, ksnHex: 'FFFF01', pinBlockHex: '0123456789ABCDEF' },
    { id: '39', reason: 'bypassed' },
    { id: '41' },
    { id: '51' },
    { id: '90', event: 'tamper' },
  ])('round-trips message $id', (message) => {
    expect(decodeMessage(encodeMessage(message))).toEqual(message);
  });

  it('encodes fields separated by FS', () => {
    expect(
      encodeMessage({
        id: '20',
        amountMinor: 5,
        currency: 'USD',
        timeoutSeconds: 9,
        entryModes: ['C'],
      }),
    ).toEqual(ascii('20\x1c5\x1cUSD\x1c9\x1cC'));
  });

  it('keeps the tracks and EMV data of message 21 as Buffers', () => {
    const track2 = buildTrack2('4111111111111111');
    const payload = encodeMessage({
      id: '21',
      entryMode: 'S',
      track1: Buffer.alloc(0),
      track2,
      emvTlv: Buffer.of(0x9f, 0x27, 0x01, 0x80),
    });
    expect(payload.subarray(payload.length - 8)).toEqual(ascii('9F270180'));
    const decoded = decodeMessage(payload);
    expect(decoded.id).toBe('21');
    if (decoded.id !== '21') return;
    expect(Buffer.isBuffer(decoded.track2)).toBe(true);
    expect(decoded.track2).toEqual(track2);
    expect(decoded.emvTlv).toEqual(Buffer.of(0x9f, 0x27, 0x01, 0x80));
    // The decoded buffers are copies: wiping the payload does not wipe them.
    payload.fill(0);
    expect(decoded.track2).toEqual(track2);
  });

  it('refuses malformed pad messages with POS121 without quoting card data', () => {
    expect(codeOf(() => decodeMessage(ascii('99')))).toBe('POS121');
    expect(codeOf(() => decodeMessage(ascii('29\x1cwhatever')))).toBe('POS121');
    expect(codeOf(() => decodeMessage(ascii('31\x1c7\x1cAB\x1cCD')))).toBe('POS121');
    const bad21 = ascii(';4111111111111111=3012101?');
    const payload = Buffer.concat([ascii('21\x1c'), bad21, ascii('\x1c\x1c\x1c')]);
    let message = '';
    try {
      decodeMessage(payload);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/POS121/);
    expect(message).not.toContain('4111111111111111');
  });

  it('refuses invalid host requests with POS122', () => {
    expect(
      codeOf(() =>
        encodeMessage({
          id: '20',
          amountMinor: 1.5,
          currency: 'EUR',
          timeoutSeconds: 30,
          entryModes: ['C'],
        }),
      ),
    ).toBe('POS122');
    expect(
      codeOf(() =>
        encodeMessage({
          id: '20',
          amountMinor: 1,
          currency: 'eur',
          timeoutSeconds: 30,
          entryModes: ['C'],
        }),
      ),
    ).toBe('POS122');
    expect(
      codeOf(() => encodeMessage({ id: '30', amountMinor: 1, currency: 'EUR', timeoutSeconds: 0 })),
    ).toBe('POS122');
    expect(codeOf(() => encodeMessage({ id: '10', line1: 'é', line2: '' }))).toBe('POS122');
    expect(codeOf(() => encodeMessage({ id: '10', line1: 'x'.repeat(33), line2: '' }))).toBe(
      'POS122',
    );
  });
});
