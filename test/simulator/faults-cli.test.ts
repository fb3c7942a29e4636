/**
 * Every fault switch that exists in the simulator code is reachable from the command line
 * (issue 14): each PIN pad fault kind, swipe fault and cloud fault switch is listed by
 * `pos-agent sim --help` and its command's help, parses from its command-line name, and (for a
 * sample end to end) does what it says through a real `sim pinpad` on tcp://.
 */
import { Buffer } from 'node:buffer';
import nacl from 'tweetnacl';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { simPinPad } from '../../agent/sim-commands.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { PinPad } from '../../drivers/pinpad/pin-pad.js';
import { createTransport } from '../../drivers/transport/transport.js';
import {
  CLOUD_FAULTS,
  FaultSpecError,
  PAD_FAULTS,
  parseCloudFault,
  parsePadFault,
  parseSwipeFault,
} from '../../simulator/faults.js';
import type { CloudFaults } from '../../simulator/cloud-core.js';
import { SWIPE_FAULTS } from '../../simulator/virtual-hid-reader.js';
import { PAD_FAULT_KINDS, type VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import { runCli } from '../helpers/cli.js';

/** The fault names a help text lists in its "Faults" section: the first word of each line. */
function listedFaults(help: string): string[] {
  const section = help.split(/^Faults[^\n]*:\n/m)[1] ?? '';
  return section
    .split('\n\n')[0]!
    .split('\n')
    .map((line) => /^\s+([a-z_-]+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

const help: Record<string, string> = {};

// Bundling the CLI and starting four node processes takes seconds, many on a loaded machine.
beforeAll(async () => {
  const commands = ['pinpad', 'reader', 'cloud', ''];
  const runs = await Promise.all(
    commands.map((c) => runCli(c === '' ? ['sim', '--help'] : ['sim', c, '--help'])),
  );
  runs.forEach((run, i) => {
    expect(run.code, run.stderr).toBe(0);
    help[commands[i] as string] = run.stdout;
  });
}, 180_000);

// Every key of the code's own unions, not a list copied into the test.
const CLOUD_SWITCHES = Object.keys({
  dropAcks: 0,
  ackDelayMs: 0,
  duplicateAcks: 0,
  reorderWindow: 0,
  reorderFlushMs: 0,
  dropAuthResponses: 0,
  authResponseDelayMs: 0,
  declineCode: 0,
  loseRecords: 0,
  alterAmountMinor: 0,
  declineAfterOffline: 0,
  ignoreVoids: 0,
  phantomChargeMinor: 0,
} satisfies Record<keyof CloudFaults, 0>) as (keyof CloudFaults)[];

describe('every simulator fault is reachable from the CLI', () => {
  it('PIN pad: each PadFault kind is listed by sim pinpad --help and sim --help, and parses to that kind', () => {
    const listed = listedFaults(help.pinpad!);
    expect(listed.length).toBe(PAD_FAULT_KINDS.length);
    for (const kind of PAD_FAULT_KINDS) {
      const name = PAD_FAULTS[kind].usage.replace(/[[:].*$/, '');
      expect(listed).toContain(name);
      expect(help['']).toContain(name);
      expect(parsePadFault(name).kind).toBe(kind);
    }
  });

  it('readers: each SwipeFault is listed by sim reader --help and sim --help, and parses', () => {
    const listed = listedFaults(help.reader!);
    expect(listed).toEqual([...SWIPE_FAULTS]);
    for (const fault of SWIPE_FAULTS) {
      expect(help['']).toContain(fault);
      expect(parseSwipeFault(fault)).toBe(fault);
    }
  });

  it('cloud: each CloudFaults switch has a CLI name listed by sim cloud --help that sets it', () => {
    const listed = listedFaults(help.cloud!);
    expect(listed.length).toBe(CLOUD_SWITCHES.length);
    for (const key of CLOUD_SWITCHES) {
      const usage = CLOUD_FAULTS[key].usage;
      const name = usage.replace(/[[:].*$/, '');
      expect(listed).toContain(name);
      expect(help['']).toContain(name);
      // A switch that needs an argument is given one, as the usage shows.
      const spec = usage.includes('[') || !usage.includes(':') ? name : `${name}:7`;
      expect(Object.keys(parseCloudFault(spec))).toEqual([key]);
    }
  });

  it('unknown names and bad arguments are refused with the list of valid ones', () => {
    expect(() => parsePadFault('pin-timeot')).toThrow(
      /unknown PIN pad fault "pin-timeot"; one of: bad-lrc/,
    );
    expect(() => parsePadFault('card-error:wet')).toThrow(FaultSpecError);
    expect(() => parsePadFault('bad-lrc:3')).toThrow(/takes no argument/);
    expect(() => parseCloudFault('drop-acks:-1')).toThrow(/whole number/);
    expect(() => parseCloudFault('decline:xyz')).toThrow(/two-character/);
    expect(() => parseSwipeFault('wet')).toThrow(/one of: bad_swipe/);
  });
});

describe('sim pinpad --fault and --card none, end to end over tcp://', () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (stops.length > 0) await stops.pop()!();
  });

  async function start(options: {
    card: string;
    fault?: string[];
  }): Promise<{ pad: VirtualPinPad; pinPad: PinPad; out: string[] }> {
    const out: string[] = [];
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    let ready!: (r: { pad: VirtualPinPad; url: string }) => void;
    const isReady = new Promise<{ pad: VirtualPinPad; url: string }>((r) => (ready = r));
    const running = simPinPad(
      { listen: 'tcp://127.0.0.1:0', ...options },
      { out: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream, stopped },
      ready,
    );
    const { pad, url } = await isReady;
    stops.push(async () => {
      stop();
      await running;
    });
    const vault = nacl.box.keyPair();
    const pinPad = await PinPad.open({
      transport: createTransport(url),
      boundary: new CardBoundary({
        tokenKey: Buffer.alloc(32, 1),
        vaultPublicKey: vault.publicKey,
      }),
      reconnect: false,
    });
    stops.push(() => pinPad.close());
    return { pad, pinPad, out };
  }

  const read = {
    amountMinor: 1250,
    currency: 'EUR',
    timeoutSeconds: 30,
    entryModes: ['C' as const],
  };
  const pin = { amountMinor: 1250, currency: 'EUR', timeoutSeconds: 30 };

  it('--fault pin-timeout and card-error meet every payment once', async () => {
    const { pinPad, out } = await start({
      card: 'visa',
      fault: ['pin-timeout', 'card-error:chip_required'],
    });
    expect(out.join('')).toContain(
      'faults armed for every payment: pin-timeout, card-error:chip_required',
    );
    for (let payment = 0; payment < 2; payment++) {
      expect(await pinPad.readCard(read)).toEqual({ ok: false, reason: 'chip_required' });
      expect(await pinPad.requestPin(pin)).toEqual({ ok: false, reason: 'timeout' });
      // Met once in this payment: a second PIN request within it is answered normally.
      expect((await pinPad.requestPin(pin)).ok).toBe(true);
    }
  });

  it('--card none waits for a card; the control command set presents one', async () => {
    const { pad, pinPad, out } = await start({ card: 'none' });
    expect(out.join('')).toContain('waiting for a card');
    const pending = pinPad.readCard(read);
    await new Promise<void>((resolve) => pad.once('message', () => resolve()));
    expect(pad.queuedCards).toBe(0);
    pad.presentCard('mastercard');
    const result = await pending;
    expect(result.ok && result.card.brand).toBe('mastercard');
  });
});
