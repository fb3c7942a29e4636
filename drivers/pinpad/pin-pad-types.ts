/**
 * The shapes of the PIN pad's API (pin-pad.ts): options, requests, results and status, as the
 * agent and docs/internal-contracts.md use them. Types only.
 */
import type { Clock } from '../../common/clock.js';
import type { CardReadFailure, CardToken } from '../boundary/card-token.js';
import type { CardBoundary } from '../boundary/card-boundary.js';
import type { LinkTimings } from '../link/link-machine.js';
import type { Transport } from '../transport/transport.js';
import type { EntryModeCode, PinFailure } from './messages.js';

/** Connection state reported by the `'state'` event. */
export type PinPadState = 'connected' | 'disconnected';

/** Options of `PinPad.open` (docs/internal-contracts.md). */
export interface PinPadOptions {
  /** The transport to the pad; the PinPad opens, reopens and closes it. */
  transport: Transport;
  /** Tokenizes card data from message 21/22. */
  boundary: CardBoundary;
  /** Link timings (architecture.md §3.1 defaults: ack 1000 ms, 3 transmissions, inter-byte 500 ms). */
  link?: Partial<LinkTimings>;
  /** @default systemClock */
  clock?: Clock;
  /** How long to wait for a reply to 00/40, and beyond the pad's own timeout for 20/30. ms, ≥ 1, default: 5000 */
  responseTimeoutMs?: number;
  /** How long to wait for 51 after 50 (the pad answers when the card is removed). ms, default: 30000 */
  resultTimeoutMs?: number;
  /**
   * Reopen the transport after a disconnect, with exponential backoff from `initialDelayMs`
   * (default 500 ms) doubling to `maxDelayMs` (default 30000 ms). `false` turns it off.
   */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number } | false;
}

/** Status of the pad (message 01). */
export interface PinPadStatus {
  model: string;
  serial: string;
  firmware: string;
  /** e.g. `['MSR', 'ICC', 'CTLS', 'PIN', 'SRED']`. */
  capabilities: string[];
}

/** Request of `PinPad.readCard`. */
export interface ReadCardRequest {
  /** Integer minor units of `currency`. */
  amountMinor: number;
  /** ISO 4217 alpha-3, e.g. `EUR`. */
  currency: string;
  /** How long the customer has to present a card, 1–300 s. */
  timeoutSeconds: number;
  /** Allowed entry: S swipe, C chip, T tap. */
  entryModes: EntryModeCode[];
}

/** Result of `PinPad.readCard`. */
export type ReadCardResult = { ok: true; card: CardToken } | { ok: false; reason: CardReadFailure };

/** Request of `PinPad.requestPin`. */
export interface PinRequest {
  amountMinor: number;
  currency: string;
  timeoutSeconds: number;
}

/** An encrypted PIN block as the pad produced it (ISO 9564 format 0 or 4 under DUKPT). */
export interface EncryptedPinBlock {
  format: 0 | 4;
  ksnHex: string;
  pinBlockHex: string;
}

/** Result of `PinPad.requestPin`. */
export type PinResult =
  { ok: true; pinBlock: EncryptedPinBlock } | { ok: false; reason: PinFailure };
