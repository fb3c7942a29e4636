/**
 * The shapes of the virtual PIN pad (virtual-pin-pad.ts): how a card is presented, the named
 * fault switches, per-test overrides, options and the byte trace. Types and the fault list only.
 */
import type { Buffer } from 'node:buffer';
import type { Clock } from '../common/clock.js';
import type { LinkTimings } from '../drivers/link/link-machine.js';
import type {
  EntryModeCode,
  HostMessage,
  PadMessage,
  PadReadFailure,
  PinFailure,
} from '../drivers/pinpad/messages.js';
import type { VirtualPinPad } from './virtual-pin-pad.js';

/** How a card is presented (queued by `VirtualPinPad.presentCard`). */
export interface CardPresentation {
  /** S swipe (tracks 1 and 2), C chip / T tap (EMV TLV). @default 'C' */
  entryMode?: EntryModeCode;
  /** `YYMM`. @default '3012' */
  expiry?: string;
  /** @default '101' for a swipe, '201' for chip/tap */
  serviceCode?: string;
  /** Track 1 / 5F20 name. @default 'TEST/CARDHOLDER' */
  name?: string;
  /** Answer 22 (SRED: masked PAN + random ciphertext) instead of 21. @default false */
  sred?: boolean;
}

/**
 * Every fault kind of {@link PadFault}, in the order the CLI lists them (simulator/faults.ts gives
 * each its command-line form; a test checks the CLI reaches every one).
 */
export const PAD_FAULT_KINDS = [
  'bad-lrc',
  'drop-ack',
  'slow-reply',
  'garbage',
  'unplug',
  'card-error',
  'pin-cancel',
  'pin-timeout',
  'pin-bypass',
  'ignore-cancel',
] as const;

/** Named fault switches (architecture.md §7). One-shot unless noted. */
export type PadFault =
  /** The next frame the pad sends has a wrong LRC (its retransmission is correct). */
  | { kind: 'bad-lrc' }
  /** The pad does not ACK the next host frame; the host's retransmission is ACKed, not re-run. */
  | { kind: 'drop-ack' }
  /** Every reply waits `delayMs` first (persistent until `VirtualPinPad.clearFaults`). */
  | { kind: 'slow-reply'; delayMs: number }
  /** `bytes` (default: 5 random printable bytes) go out before the next frame. */
  | { kind: 'garbage'; bytes?: Uint8Array }
  /** Closes the connection now and refuses new ones until `VirtualPinPad.replug`. */
  | { kind: 'unplug' }
  /** The next read card answers 29 with `reason`. */
  | { kind: 'card-error'; reason: PadReadFailure }
  /** The next PIN entry answers 39 `canceled` (the customer pressed Cancel on the pad). */
  | { kind: 'pin-cancel' }
  /** The next PIN entry answers 39 `timeout` (the customer never typed a PIN). */
  | { kind: 'pin-timeout' }
  /** The next PIN entry answers 39 `bypassed` (the customer skipped the PIN). */
  | { kind: 'pin-bypass' }
  /**
   * The next cancel (40) is swallowed: no 29/39 and no 41, and a pending card read stays pending,
   * so a card presented later answers the canceled request late (a pad that lost the 40).
   */
  | { kind: 'ignore-cancel' };

// Every kind of the union is listed in PAD_FAULT_KINDS and nothing else is (checked both ways).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const padFaultKindsComplete: Same<PadFault['kind'], (typeof PAD_FAULT_KINDS)[number]> = true;
void padFaultKindsComplete;

/** A per-test answer for a message id: the replies to send (none: `[]`). */
export type PadOverride = (message: HostMessage, pad: VirtualPinPad) => PadMessage[] | PadMessage;

/** Options of `VirtualPinPad`. */
export interface VirtualPinPadOptions {
  /** @default systemClock */
  clock?: Clock;
  /** Link timings of the pad's side. */
  link?: Partial<LinkTimings>;
  /** Status fields (message 01). */
  model?: string;
  serial?: string;
  firmware?: string;
  /** @default ['MSR','ICC','CTLS','PIN','SRED']; add `RID` for a pad that repeats request ids. */
  capabilities?: string[];
  /** A card (test card name or PAN) answered to every read when the queue is empty. @default none */
  autoPresent?: string | (CardPresentation & { card: string });
  /** Answer to 30. @default 'ok' (31 with a random PIN block) */
  pinResult?: 'ok' | PinFailure;
}

/** One chunk of the raw byte trace. */
export interface TraceEntry {
  direction: 'host-to-pad' | 'pad-to-host';
  bytes: Buffer;
}
