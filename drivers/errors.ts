/**
 * The error codes of `drivers/` (POS100–POS199, docs/internal-contracts.md): one table so a code
 * is never reused. Every driver error is an {@link AgentError} built by {@link driverError}.
 *
 * Messages name the value, the limit and the fix (architecture.md §8). They NEVER contain card data:
 * callers pass lengths, counts, paths and masked values only (architecture.md §2, PCI DSS 4.0.1 req. 3.3.1).
 */
import { AgentError } from '../common/agent-error.js';

/** Code → short name of every error the drivers raise. */
export const DRIVER_ERRORS = {
  /** A transport could not be opened (path missing, permission, port locked, TCP refused). */
  POS101: 'transport cannot open',
  /** The transport closed while in use (cable pulled, TCP reset, pty gone) or is not open. */
  POS102: 'transport disconnected',
  /** The configured device path has no transport (`/dev/…`, `tcp://host:port`, `mock://name`). */
  POS103: 'unsupported transport path',
  /** A frame could not be built: payload empty, longer than 1024 bytes, or a byte outside 0x20–0x7E/FS. */
  POS110: 'bad frame',
  /** Stop-and-wait gave up: no ACK (or only NAKs) after `maxTransmissions`; EOT was sent. */
  POS111: 'link: no ACK after maxTransmissions',
  /** The link was shut down (device closed) while a frame was queued or waiting for its ACK. */
  POS112: 'link closed',
  /** The PIN pad did not answer within the response timeout. */
  POS120: 'PIN pad response timeout',
  /** A message from the PIN pad is malformed or not valid at this point of the exchange. */
  POS121: 'unexpected or malformed PIN pad message',
  /** A host message could not be encoded (field out of range, forbidden character). */
  POS122: 'invalid PIN pad request',
  /** The PAN fails Luhn (ISO/IEC 7812-1 Annex B) or is not 12–19 digits. */
  POS130: 'invalid PAN',
  /** The card's expiry month has passed. */
  POS131: 'expired card',
  /** Track 1/2 or EMV data cannot be parsed (ISO/IEC 7813, EMV Book 3 Annex B). */
  POS132: 'bad track data',
  /** A swiped chip card (service code 2xx/6xx) while fallback swipe is not allowed. */
  POS133: 'chip required',
  /** A sealed card blob cannot be opened (wrong vault key, truncated, tampered). */
  POS134: 'sealed card cannot be opened',
  /** The card boundary was configured with a key of the wrong size. */
  POS135: 'card boundary misconfigured',
  /** node-hid is not installed, or its native library (libusb/libudev/hidraw) cannot load. */
  POS104: 'HID support unavailable',
  /** A `hid://VID:PID[/serial]` path is malformed. */
  POS105: 'bad hid:// path',
  /** A vendor HID MSR input report is malformed (size, decode status, track length). */
  POS140: 'bad HID MSR report',
  /** Keyboard-wedge input cannot be turned into track text (unknown key code, overlong swipe, bad report). */
  POS141: 'bad keyboard-wedge input',
  /** A hex trace given to `pos-agent decode` is not hex, or the kind is unknown. */
  POS142: 'bad trace input',
  /** EMV BER-TLV is malformed (truncated tag, length or value; unsupported length form). */
  POS143: 'bad EMV TLV',
  /** A card reader is not connected (unplugged, not found) while a card read needs it. */
  POS144: 'card reader disconnected',
  /** A card reader configuration is invalid (kind/transport mismatch). */
  POS145: 'card reader misconfigured',
  /** A project SRED HID report is malformed, or its "masked" track holds clear PAN digits (reader masking off). */
  POS146: 'bad SRED HID report',
} as const;

/** One of the codes of {@link DRIVER_ERRORS}. */
export type DriverErrorCode = keyof typeof DRIVER_ERRORS;

/**
 * Builds the {@link AgentError} for a driver code.
 * @param code — a {@link DriverErrorCode}.
 * @param message — what, the value or limit, and the fix; never card data.
 * @param options.cause — the lower-level error; options.details — card-data-free context.
 */
export function driverError(
  code: DriverErrorCode,
  message: string,
  options: { cause?: unknown; details?: Record<string, unknown> } = {},
): AgentError {
  return new AgentError(code, message, options);
}
