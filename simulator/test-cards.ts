/**
 * The simulator's test cards (architecture.md §7) and builders for their track and EMV data.
 *
 * These PANs are public test numbers; they may appear in `simulator/` and `test/` only, never in
 * `drivers/` or `agent/` (architecture.md §2). The cloud core simulator approves every card here except
 * the `declined` one (and amounts ending in 51, simulator/cloud-core.ts); `expired` and
 * `chip-swiped` are refused by the agent's card boundary before the cloud sees them.
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';

/** Brand names as in drivers/boundary/card-token.ts. */
export type TestCardBrand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'jcb';

/**
 * What a test card leads to when nothing else intervenes (amount rules and faults can still
 * decline an `approve` card): `approve` / `decline` by the cloud core simulator, or refused by the
 * agent's card boundary before the cloud sees it (`expired`, `chip_required`).
 */
export type TestCardOutcome = 'approve' | 'decline' | 'expired' | 'chip_required';

/** A test card of architecture.md §7 (docs/test-cards.md is the table for people; a test keeps them equal). */
export interface TestCard {
  /** Short name used by the CLI, scenarios and `presentCard('visa')`. */
  name: string;
  /** The PAN (public test number). */
  pan: string;
  brand: TestCardBrand;
  /** What happens to a payment with it (see {@link TestCardOutcome}). */
  outcome: TestCardOutcome;
  /** ISO 8583 response code of a `decline`. */
  declineCode?: string;
  /** How the virtual PIN pad presents it unless told otherwise: S swipe, C chip, T tap. @default 'C' */
  entryMode?: 'S' | 'C' | 'T';
  /** Expiry `YYMM` it is presented with. @default '3012' */
  expiry?: string;
  /** Service code it is presented with (ISO/IEC 7813). @default '101' swiped, '201' chip/tap */
  serviceCode?: string;
  /** One line for people: what the card is for. */
  description: string;
}

/** The test cards of architecture.md §7, and presentations of them that trigger the card boundary's refusals. */
export const TEST_CARDS: readonly TestCard[] = [
  {
    name: 'visa',
    pan: '4111111111111111',
    brand: 'visa',
    outcome: 'approve',
    description: 'approved; the default card',
  },
  {
    name: 'visa-2',
    pan: '4012888888881881',
    brand: 'visa',
    outcome: 'approve',
    description: 'approved (a second Visa: another token)',
  },
  {
    name: 'mastercard',
    pan: '5555555555554444',
    brand: 'mastercard',
    outcome: 'approve',
    description: 'approved',
  },
  {
    name: 'mastercard-2',
    pan: '2223000048400011',
    brand: 'mastercard',
    outcome: 'approve',
    description: 'approved (2-series BIN)',
  },
  {
    name: 'amex',
    pan: '378282246310005',
    brand: 'amex',
    outcome: 'approve',
    description: 'approved (15 digits)',
  },
  {
    name: 'discover',
    pan: '6011111111111117',
    brand: 'discover',
    outcome: 'approve',
    description: 'approved',
  },
  {
    name: 'jcb',
    pan: '3530111333300000',
    brand: 'jcb',
    outcome: 'approve',
    description: 'approved',
  },
  {
    name: 'declined',
    pan: '4000000000000002',
    brand: 'visa',
    outcome: 'decline',
    declineCode: '05',
    description: 'declined by the issuer: 05 do not honour',
  },
  {
    name: 'visa-swipe',
    pan: '4111111111111111',
    brand: 'visa',
    outcome: 'approve',
    entryMode: 'S',
    description: 'approved; presented as a magnetic-stripe swipe',
  },
  {
    name: 'visa-tap',
    pan: '4111111111111111',
    brand: 'visa',
    outcome: 'approve',
    entryMode: 'T',
    description: 'approved; presented contactless',
  },
  {
    name: 'expired',
    pan: '4111111111111111',
    brand: 'visa',
    outcome: 'expired',
    expiry: '2001',
    description: 'expired January 2020: refused at the card boundary',
  },
  {
    name: 'chip-swiped',
    pan: '4111111111111111',
    brand: 'visa',
    outcome: 'chip_required',
    entryMode: 'S',
    serviceCode: '201',
    description: 'a chip card swiped: refused, insert the card instead',
  },
];

/** Every test PAN, once each, for leak sweeps (architecture.md §2: a test scans logs, SQLite and MQTT for these). */
export const TEST_PANS: readonly string[] = [...new Set(TEST_CARDS.map((c) => c.pan))];

/** The test card with this name or PAN, or `undefined`. */
export function findTestCard(nameOrPan: string): TestCard | undefined {
  return TEST_CARDS.find((c) => c.name === nameOrPan || c.pan === nameOrPan);
}

/** Track data options; defaults give a valid magnetic-stripe-only card. */
export interface TrackOptions {
  /** `YYMM`. @default '3012' */
  expiry?: string;
  /** Three digits; 1xx magstripe, 2xx/6xx chip card (ISO/IEC 7813). @default '101' */
  serviceCode?: string;
  /** Discretionary data digits. @default '00000000' */
  discretionary?: string;
  /** Add `;`/`?` (or `%`/`?`) sentinels. @default true */
  sentinels?: boolean;
}

/** ISO/IEC 7813 track 2 as ASCII bytes: `;PAN=YYMMSVCDD?`. */
export function buildTrack2(pan: string, options: TrackOptions = {}): Buffer {
  const body = `${pan}=${options.expiry ?? '3012'}${options.serviceCode ?? '101'}${options.discretionary ?? '00000000'}`;
  return Buffer.from(options.sentinels === false ? body : `;${body}?`, 'latin1');
}

/** ISO/IEC 7813 track 1 format B as ASCII bytes: `%BPAN^NAME^YYMMSVCDD?`. */
export function buildTrack1(
  pan: string,
  name = 'TEST/CARDHOLDER',
  options: TrackOptions = {},
): Buffer {
  const body = `B${pan}^${name}^${options.expiry ?? '3012'}${options.serviceCode ?? '101'}${options.discretionary ?? '00000000'}`;
  return Buffer.from(options.sentinels === false ? body : `%${body}?`, 'latin1');
}

function berLength(length: number): Buffer {
  return length < 0x80 ? Buffer.of(length) : Buffer.of(0x81, length);
}

function tlv(tagHex: string, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(tagHex, 'hex'), berLength(value.length), value]);
}

function bcd(digits: string): Buffer {
  const padded = digits.length % 2 === 0 ? digits : `${digits}F`;
  return Buffer.from(padded.replace(/=/g, 'D'), 'hex');
}

/**
 * EMV chip data (BER-TLV, EMV Book 3 Annex A) for a card: template 77 with 57, 5A, 5F24, 5F34
 * and authorization tags (random cryptogram), plus a vendor-private DF01 the agent must drop.
 */
export function buildEmvTlv(
  pan: string,
  options: TrackOptions & {
    amountMinor?: number;
    currencyNumeric?: string;
    cardholderName?: string;
  } = {},
): Buffer {
  const expiry = options.expiry ?? '3012';
  const svc = options.serviceCode ?? '201';
  const inner = Buffer.concat([
    tlv('57', bcd(`${pan}=${expiry}${svc}${options.discretionary ?? '00000000'}`)),
    tlv('5A', bcd(pan)),
    tlv('5F24', bcd(`${expiry}31`)),
    tlv('5F34', Buffer.of(0x01)),
    ...(options.cardholderName === undefined
      ? []
      : [tlv('5F20', Buffer.from(options.cardholderName, 'latin1'))]),
    tlv('82', Buffer.of(0x39, 0x00)),
    tlv('95', Buffer.alloc(5)),
    tlv('9A', Buffer.from('261121', 'hex')),
    tlv('9C', Buffer.of(0x00)),
    tlv('9F02', Buffer.from(String(options.amountMinor ?? 0).padStart(12, '0'), 'hex')),
    tlv('5F2A', Buffer.from((options.currencyNumeric ?? '978').padStart(4, '0'), 'hex')),
    tlv('9F26', randomBytes(8)),
    tlv('9F27', Buffer.of(0x80)),
    tlv('9F36', Buffer.of(0x00, 0x2a)),
    tlv('9F37', randomBytes(4)),
    tlv('DF01', Buffer.from('vendor', 'latin1')),
  ]);
  return Buffer.concat([Buffer.of(0x77), berLength(inner.length), inner]);
}
