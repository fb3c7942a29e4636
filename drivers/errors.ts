/**
 * The error codes of `drivers/` (POS1xx, docs/error-codes.md): one table so a code is never
 * reused. Every driver error is an {@link AgentError} built by {@link driverError}.
 *
 * Ranges inside POS1xx: POS10x transports, POS11x framing and link, POS12x PIN pad protocol,
 * POS13x card data and the card boundary, POS14x card readers and traces.
 *
 * Messages name the value, the limit and the fix (architecture.md §8). They NEVER contain card data:
 * callers pass lengths, counts, paths and masked values only (architecture.md §2, PCI DSS 4.0.1 req. 3.3.1).
 */
import {
  AgentError,
  errorRange,
  type AgentErrorOptions,
  type ErrorSpec,
} from '../common/agent-error.js';

/**
 * Code → {@link ErrorSpec} of every error the drivers raise. Adding a code is one entry here;
 * `status` only where the local API answers with the code.
 */
export const DRIVER_ERRORS = {
  POS101: {
    name: 'transport cannot open',
    fix: 'check the device path, that the device is plugged in, the permissions (dialout group) and that no other program holds the port; tcp:// needs the peer listening',
  },
  POS102: {
    name: 'transport disconnected',
    fix: 'reconnect the cable or the device; the agent reopens it with backoff',
    status: 503,
  },
  POS103: {
    name: 'unsupported transport path',
    fix: 'use an absolute serial path (/dev/ttyUSB0), tcp://host:port, hid://VID:PID[/serial] or mock://name',
  },
  POS104: {
    name: 'HID support unavailable',
    fix: 'install node-hid and its libraries (apt install libusb-1.0-0 libudev1)',
  },
  POS105: {
    name: 'bad hid:// path',
    fix: 'write the path as hid://VID:PID[/serial] with 4-digit hex ids; "pos-agent devices" lists them',
  },
  POS110: {
    name: 'bad frame',
    fix: 'send 1–1024 payload bytes of 0x20–0x7E or FS only (architecture.md §3.1)',
  },
  POS111: {
    name: 'link: no ACK after maxTransmissions',
    fix: 'check the cable, the baud rate and that the PIN pad is powered and in host mode',
  },
  POS112: {
    name: 'link closed',
    fix: 'none needed when the device was closed on purpose; otherwise reopen the device',
  },
  POS120: {
    name: 'PIN pad response timeout',
    fix: 'check that the PIN pad is powered and connected; retry the payment',
    status: 504,
  },
  POS121: {
    name: 'unexpected or malformed PIN pad message',
    fix: 'check that the PIN pad runs the expected protocol version; capture a trace for "pos-agent decode"',
  },
  POS122: {
    name: 'invalid PIN pad request',
    fix: 'keep display text and fields within the limits the message names',
  },
  POS130: { name: 'invalid PAN', fix: 'ask the customer for another card or to read it again' },
  POS131: { name: 'expired card', fix: 'ask the customer for another card' },
  POS132: { name: 'bad track data', fix: 'ask the customer to swipe or insert the card again' },
  POS133: {
    name: 'chip required',
    fix: 'insert the card in the chip reader; fallback swipe is off (card.allowFallbackSwipe)',
  },
  POS134: {
    name: 'sealed card cannot be opened',
    fix: 'check that the vault key matches the provisioned vault public key and that the blob is whole',
  },
  POS135: {
    name: 'card boundary misconfigured',
    fix: 'provision the tenant token key (≥ 16 bytes) and the 32-byte vault public key again',
  },
  POS140: {
    name: 'bad HID MSR report',
    fix: 'check the reader is in vendor HID mode (kind "hid-msr"); ask the customer to swipe again',
  },
  POS141: {
    name: 'bad keyboard-wedge input',
    fix: 'check the reader is in keyboard mode (kind "wedge") and ends each swipe with Enter',
  },
  POS142: {
    name: 'bad trace input',
    fix: 'give "pos-agent decode" pairs of hex digits and one of the kinds it lists',
  },
  POS143: { name: 'bad EMV TLV', fix: 'ask the customer to insert the card again' },
  POS144: {
    name: 'card reader disconnected',
    fix: 'plug the card reader in (or replug it); "pos-agent devices" lists the readers present',
  },
  POS145: {
    name: 'card reader misconfigured',
    fix: 'set the reader\'s kind in the config to the kind the device reports ("pos-agent doctor" names it)',
  },
  POS146: {
    name: 'bad SRED HID report',
    fix: 'ask the customer to swipe again; if it repeats, turn masking and encryption on in the reader configuration',
  },
} as const satisfies Record<`POS1${number}`, ErrorSpec>;

/** One of the codes of {@link DRIVER_ERRORS}. */
export type DriverErrorCode = keyof typeof DRIVER_ERRORS;

declare module '../common/agent-error.js' {
  interface ErrorFamilies {
    /** POS1xx, drivers/errors.ts. */
    driver: DriverErrorCode;
  }
}

/**
 * Builds the {@link AgentError} for a driver code.
 * @param code — a {@link DriverErrorCode}.
 * @param message — what, the value or limit, and the fix; never card data.
 * @param options.cause — the lower-level error; options.details — card-data-free context.
 */
export function driverError<C extends DriverErrorCode>(
  code: C,
  message: string,
  options: AgentErrorOptions = {},
): AgentError<C> {
  return new AgentError(code, message, options);
}

/** Any driver error (POS1xx). */
export const isDriverError = errorRange('POS1');
/** A transport error (POS10x): cannot open, disconnected, bad path, HID support. */
export const isTransportError = errorRange('POS10');
/** A framing or link error (POS11x): bad frame, no ACK, link closed. */
export const isLinkError = errorRange('POS11');
/** A PIN pad protocol error (POS12x): timeout, unexpected message, bad request. */
export const isPinPadError = errorRange('POS12');
/** A card data error (POS13x): PAN, expiry, track, chip required, sealed blob, boundary keys. */
export const isCardDataError = errorRange('POS13');
/** A card reader error (POS14x): reports, wedge input, traces, EMV TLV, reader state. */
export const isCardReaderError = errorRange('POS14');
