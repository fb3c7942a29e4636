/**
 * Every fault switch of the simulator by name, with its command-line form (issue 14): the one
 * place `pos-agent sim pinpad|reader|cloud --fault …`, the control endpoints and the scenarios
 * read fault names from, so a fault that exists in the simulator code is reachable from the CLI.
 *
 * ```
 *  --fault NAME[:ARG]          e.g.  pin-timeout   slow-reply:2000   card-error:bad_read
 *  PIN pad   PAD_FAULTS        one entry per PadFault kind (virtual-pin-pad.ts)
 *  readers   SWIPE_FAULT_HELP  one entry per SwipeFault (virtual-hid-reader.ts)
 *  cloud     CLOUD_FAULTS      one entry per CloudFaults switch (cloud-core.ts)
 * ```
 *
 * The records are typed `Record<kind, …>`, so adding a fault kind without a CLI entry does not
 * compile; `test/simulator/faults-cli.test.ts` checks that every name appears in the help.
 */
import type { PadReadFailure } from '../drivers/pinpad/messages.js';
import type { CloudFaults } from './cloud-core.js';
import { SWIPE_FAULTS, type SwipeFault } from './virtual-hid-reader.js';
import { PAD_FAULT_KINDS, type PadFault } from './virtual-pin-pad.js';

/** A fault name that is not known, or an argument that does not fit it. */
export class FaultSpecError extends Error {
  override get name(): string {
    return 'FaultSpecError';
  }
}

interface FaultEntry<T> {
  /** `NAME` or `NAME:ARG` as typed on the command line. */
  usage: string;
  /** One line for `--help`. */
  help: string;
  /** Builds the switch from the text after `:` (undefined when there was none). */
  parse(arg: string | undefined): T;
}

const READ_FAILURES: readonly PadReadFailure[] = [
  'bad_read',
  'chip_required',
  'card_removed',
  'timeout',
  'canceled',
];

function noArg<T>(name: string, value: T): (arg: string | undefined) => T {
  return (arg) => {
    if (arg !== undefined)
      throw new FaultSpecError(`fault ${name} takes no argument, not ":${arg}"`);
    return value;
  };
}

function milliseconds(name: string, arg: string | undefined, fallback: number): number {
  if (arg === undefined) return fallback;
  const n = Number(arg);
  if (!Number.isInteger(n) || n < 0 || n > 600_000)
    throw new FaultSpecError(`fault ${name} takes milliseconds 0–600000, not "${arg}"`);
  return n;
}

function count(name: string, arg: string | undefined, fallback: number, min = 1): number {
  if (arg === undefined) return fallback;
  const n = Number(arg);
  if (!Number.isInteger(n) || n < min || n > 1_000_000)
    throw new FaultSpecError(`fault ${name} takes a whole number ≥ ${min}, not "${arg}"`);
  return n;
}

/** The PIN pad's faults (`pos-agent sim pinpad --fault`), one per {@link PadFault} kind. */
export const PAD_FAULTS: { readonly [K in PadFault['kind']]: FaultEntry<PadFault> } = {
  'bad-lrc': {
    usage: 'bad-lrc',
    help: 'the reply frame carries a wrong LRC; the host NAKs and the pad resends it',
    parse: noArg('bad-lrc', { kind: 'bad-lrc' }),
  },
  'drop-ack': {
    usage: 'drop-ack',
    help: 'the pad does not ACK the next host frame; the host retransmits',
    parse: noArg('drop-ack', { kind: 'drop-ack' }),
  },
  'slow-reply': {
    usage: 'slow-reply[:MS]',
    help: 'every reply waits MS milliseconds first (default 2000)',
    parse: (arg) => ({ kind: 'slow-reply', delayMs: milliseconds('slow-reply', arg, 2000) }),
  },
  garbage: {
    usage: 'garbage',
    help: 'random printable bytes go out before the next frame (the host discards them)',
    parse: noArg('garbage', { kind: 'garbage' }),
  },
  unplug: {
    usage: 'unplug',
    help: 'the pad disconnects and refuses connections until replugged (control endpoint only)',
    parse: noArg('unplug', { kind: 'unplug' }),
  },
  'card-error': {
    usage: 'card-error[:REASON]',
    help: `the card read fails with 29 and REASON: ${READ_FAILURES.join(', ')} (default bad_read)`,
    parse: (arg) => {
      const reason = (arg ?? 'bad_read') as PadReadFailure;
      if (!READ_FAILURES.includes(reason))
        throw new FaultSpecError(
          `fault card-error takes one of ${READ_FAILURES.join(', ')}, not "${arg}"`,
        );
      return { kind: 'card-error', reason };
    },
  },
  'pin-cancel': {
    usage: 'pin-cancel',
    help: 'the customer presses Cancel at the PIN prompt (39 canceled)',
    parse: noArg('pin-cancel', { kind: 'pin-cancel' }),
  },
  'pin-timeout': {
    usage: 'pin-timeout',
    help: 'the customer never enters the PIN (39 timeout, answered at once)',
    parse: noArg('pin-timeout', { kind: 'pin-timeout' }),
  },
  'pin-bypass': {
    usage: 'pin-bypass',
    help: 'the customer skips the PIN (39 bypassed)',
    parse: noArg('pin-bypass', { kind: 'pin-bypass' }),
  },
  'ignore-cancel': {
    usage: 'ignore-cancel',
    help: 'the pad swallows a cancel (40): no 41, and a pending read answers late',
    parse: noArg('ignore-cancel', { kind: 'ignore-cancel' }),
  },
};

/** The card readers' swipe faults (`pos-agent sim reader --fault`), one per {@link SwipeFault}. */
export const SWIPE_FAULT_HELP: { readonly [K in SwipeFault]: string } = {
  bad_swipe: 'neither track could be read (%E?;E?)',
  one_track: 'track 1 failed, track 2 is good (one good track is enough)',
  reversed: 'the card was swiped backwards (tracks reversed)',
  chip_card: 'a chip card (service code 201) is swiped: chip_required',
  garbage: 'random bytes instead of track data',
};

/**
 * The cloud core's faults (`pos-agent sim cloud --fault`), one per {@link CloudFaults} switch;
 * each gives the switches it sets.
 */
export const CLOUD_FAULTS: { readonly [K in keyof CloudFaults]: FaultEntry<Partial<CloudFaults>> } =
  {
    dropAcks: {
      usage: 'drop-acks[:N]',
      help: 'lose acknowledgements: the next N, or every one without N (the agent resends)',
      parse: (arg) => ({ dropAcks: arg === undefined ? true : count('drop-acks', arg, 1) }),
    },
    ackDelayMs: {
      usage: 'late-acks[:MS]',
      help: 'send every acknowledgement MS milliseconds late (default 15000, past the agent ack timeout)',
      parse: (arg) => ({ ackDelayMs: milliseconds('late-acks', arg, 15_000) }),
    },
    duplicateAcks: {
      usage: 'duplicate-acks',
      help: 'send every acknowledgement twice',
      parse: noArg('duplicate-acks', { duplicateAcks: true }),
    },
    reorderWindow: {
      usage: 'reorder-acks[:N]',
      help: 'hold acknowledgements until N (default 3) are collected, then send them in reverse order',
      parse: (arg) => ({ reorderWindow: count('reorder-acks', arg, 3, 2) }),
    },
    reorderFlushMs: {
      usage: 'reorder-flush:MS',
      help: 'how long a partly filled reorder window waits before it is sent anyway (default 100)',
      parse: (arg) => ({ reorderFlushMs: milliseconds('reorder-flush', arg, 100) }),
    },
    dropAuthResponses: {
      usage: 'drop-auth',
      help: 'never answer online authorization requests (the agent times out: ambiguous)',
      parse: noArg('drop-auth', { dropAuthResponses: true }),
    },
    authResponseDelayMs: {
      usage: 'late-auth[:MS]',
      help: 'answer authorization requests MS milliseconds late (default 30000); the decision is made at once',
      parse: (arg) => ({ authResponseDelayMs: milliseconds('late-auth', arg, 30_000) }),
    },
    declineCode: {
      usage: 'decline[:CODE]',
      help: 'decline every new payment with this ISO 8583 response code (default 05)',
      parse: (arg) => {
        const code = arg ?? '05';
        if (!/^[0-9A-Z]{2}$/.test(code))
          throw new FaultSpecError(
            `fault decline takes a two-character response code, not "${arg}"`,
          );
        return { declineCode: code };
      },
    },
    loseRecords: {
      usage: 'lose-record[:N]',
      help: 'the ledger loses the next N payment records (default 1) after acknowledging them: missing_at_cloud at the batch close',
      parse: (arg) => ({ loseRecords: count('lose-record', arg, 1) }),
    },
    alterAmountMinor: {
      usage: 'alter-amount[:MINOR]',
      help: 'the next payment record is booked with its amount raised by MINOR minor units (default 100): amount_differs',
      parse: (arg) => ({ alterAmountMinor: count('alter-amount', arg, 100) }),
    },
    declineAfterOffline: {
      usage: 'decline-after-offline[:N]',
      help: 'the next N offline approvals (default 1) are acknowledged approved, then booked declined: state_differs',
      parse: (arg) => ({ declineAfterOffline: count('decline-after-offline', arg, 1) }),
    },
    ignoreVoids: {
      usage: 'ignore-void[:N]',
      help: 'the next N void records (default 1) are acknowledged but not applied: charged_declined_here',
      parse: (arg) => ({ ignoreVoids: count('ignore-void', arg, 1) }),
    },
    phantomChargeMinor: {
      usage: 'phantom-charge[:MINOR]',
      help: 'a charge of MINOR minor units (default 1000) the terminal never made appears at its next batch report: missing_here',
      parse: (arg) => ({ phantomChargeMinor: count('phantom-charge', arg, 1000) }),
    },
  };

function split(spec: string): { name: string; arg: string | undefined } {
  const i = spec.indexOf(':');
  return i < 0
    ? { name: spec, arg: undefined }
    : { name: spec.slice(0, i), arg: spec.slice(i + 1) };
}

function nameOf(usage: string): string {
  return split(usage.replace(/\[.*$/, '')).name;
}

/** The command-line names of the PIN pad faults, in order. */
export const PAD_FAULT_NAMES: readonly string[] = PAD_FAULT_KINDS.map((k) =>
  nameOf(PAD_FAULTS[k].usage),
);

/** The command-line names of the cloud faults, in order. */
export const CLOUD_FAULT_NAMES: readonly string[] = Object.values(CLOUD_FAULTS).map((e) =>
  nameOf(e.usage),
);

/**
 * Parses a PIN pad fault as typed on the command line (`NAME[:ARG]`).
 * @throws FaultSpecError naming the valid faults, or the valid arguments of this one.
 */
export function parsePadFault(spec: string): PadFault {
  const { name, arg } = split(spec);
  const entry = Object.values(PAD_FAULTS).find((e) => nameOf(e.usage) === name);
  if (entry === undefined)
    throw new FaultSpecError(
      `unknown PIN pad fault "${name}"; one of: ${PAD_FAULT_NAMES.join(', ')}`,
    );
  return entry.parse(arg);
}

/**
 * Parses a swipe fault name.
 * @throws FaultSpecError naming the valid faults.
 */
export function parseSwipeFault(spec: string): SwipeFault {
  if (!(SWIPE_FAULTS as readonly string[]).includes(spec))
    throw new FaultSpecError(`unknown reader fault "${spec}"; one of: ${SWIPE_FAULTS.join(', ')}`);
  return spec as SwipeFault;
}

/**
 * Parses a cloud fault as typed on the command line (`NAME[:ARG]`) into the switches it sets.
 * @throws FaultSpecError naming the valid faults, or the valid arguments of this one.
 */
export function parseCloudFault(spec: string): Partial<CloudFaults> {
  const { name, arg } = split(spec);
  const entry = Object.values(CLOUD_FAULTS).find((e) => nameOf(e.usage) === name);
  if (entry === undefined)
    throw new FaultSpecError(
      `unknown cloud fault "${name}"; one of: ${CLOUD_FAULT_NAMES.join(', ')}`,
    );
  return entry.parse(arg);
}

/** `--help` text listing faults: one `  usage  help` line each. */
export function faultHelp(entries: ReadonlyArray<{ usage: string; help: string }>): string {
  const width = Math.max(...entries.map((e) => e.usage.length));
  return entries.map((e) => `  ${e.usage.padEnd(width)}  ${e.help}`).join('\n');
}

/** The PIN pad faults for {@link faultHelp}. */
export const padFaultHelpEntries = (): Array<{ usage: string; help: string }> =>
  PAD_FAULT_KINDS.map((k) => PAD_FAULTS[k]);

/** The reader faults for {@link faultHelp}. */
export const swipeFaultHelpEntries = (): Array<{ usage: string; help: string }> =>
  SWIPE_FAULTS.map((f) => ({ usage: f, help: SWIPE_FAULT_HELP[f] }));

/** The cloud faults for {@link faultHelp}. */
export const cloudFaultHelpEntries = (): Array<{ usage: string; help: string }> =>
  Object.values(CLOUD_FAULTS);
