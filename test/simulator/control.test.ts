/**
 * The control endpoints of the long-running simulators (issue 14): cards and faults change while
 * `sim pinpad`, `sim reader` and `sim cloud` run, over HTTP on loopback; bad commands get a 400
 * that says what was expected.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { simReader } from '../../agent/commands/sim-reader.js';
import { generateDevelopmentKeys, writeCloudSideKeys } from '../../agent/keys.js';
import { simCloud, simPinPad, type SimIo } from '../../agent/sim-commands.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import type { CloudCore } from '../../simulator/cloud-core.js';
import type { VirtualPinPad } from '../../simulator/virtual-pin-pad.js';
import type { VirtualSerialReader } from '../../simulator/virtual-serial-reader.js';

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (stops.length > 0) await stops.pop()!();
});

/** An io whose stop is registered for afterEach; `running` is awaited there too. */
function io(): SimIo & { stop: () => void } {
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  return { out: { write: () => true } as unknown as NodeJS.WritableStream, stopped, stop };
}

/** A control answer, loosely typed for assertions. */
interface Answer {
  ok?: boolean;
  delivered?: boolean;
  state: Record<string, unknown> & { standingFaults: string[] };
  error: { code: string; message: string };
}

async function post(url: string, body: unknown): Promise<{ status: number; json: Answer }> {
  const response = await fetch(url, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Answer };
}

async function started<T>(
  start: (ready: (value: T) => void, io: SimIo) => Promise<void>,
): Promise<T> {
  const handle = io();
  let ready!: (value: T) => void;
  const isReady = new Promise<T>((resolve) => (ready = resolve));
  const running = start(ready, handle);
  stops.push(async () => {
    handle.stop();
    await running;
  });
  return Promise.race([isReady, running.then(() => Promise.reject(new Error('ended early')))]);
}

describe('sim pinpad --control', () => {
  it('presents cards, switches the card and faults, and refuses bad commands with a 400', async () => {
    const { pad, controlUrl } = await started<{ pad: VirtualPinPad; controlUrl?: string }>(
      (ready, handle) =>
        simPinPad({ listen: 'tcp://127.0.0.1:0', card: 'none', control: 0 }, handle, ready),
    );
    const url = controlUrl as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const presented = await post(url, { do: 'present', card: 'declined', entryMode: 'S' });
    expect(presented.status).toBe(200);
    expect(presented.json.state.queuedCards).toBe(1);
    expect(pad.queuedCards).toBe(1);

    const faults = await post(url, { do: 'faults', faults: ['pin-timeout', 'slow-reply:50'] });
    expect(faults.json.state.standingFaults).toEqual(['pin-timeout', 'slow-reply']);
    expect(pad.standingFaults.map((f) => f.kind)).toEqual(['pin-timeout', 'slow-reply']);

    expect((await post(url, { do: 'unplug' })).json.state.unplugged).toBe(true);
    expect((await post(url, { do: 'replug' })).json.state.unplugged).toBe(false);
    expect((await post(url, { do: 'clear-faults' })).json.state.standingFaults).toEqual([]);

    const unknownFault = await post(url, { do: 'fault', fault: 'pin-timeot' });
    expect(unknownFault.status).toBe(400);
    expect(unknownFault.json.error.message).toMatch(
      /unknown PIN pad fault "pin-timeot"; one of: bad-lrc, .*ignore-cancel/,
    );
    const unknownCard = await post(url, { do: 'present', card: 'vissa' });
    expect(unknownCard.status).toBe(400);
    expect(unknownCard.json.error.message).toMatch(/card: unknown test card; one of: visa/);
    const notJson = await post(url, 'present visa');
    expect(notJson.status).toBe(400);
    expect(notJson.json.error.message).toMatch(/not JSON/);
    const state = (await (await fetch(url)).json()) as { state: unknown };
    expect(state.state).toMatchObject({ queuedCards: 1, connected: false });
  });
});

describe('sim reader --control', () => {
  it('swipes on demand, with the command-line card unless one is named', async () => {
    const { reader, controlUrl } = await started<{
      reader: VirtualSerialReader;
      controlUrl?: string;
    }>((ready, handle) =>
      simReader(
        { kind: 'serial', listen: 'tcp://127.0.0.1:0', card: 'visa', control: 0 },
        { ...handle, input: process.stdin, onReady: ready },
      ),
    );
    const swiped = await post(controlUrl as string, {
      do: 'swipe',
      card: 'amex',
      fault: 'one_track',
    });
    expect(swiped.json).toMatchObject({ ok: true, delivered: false });
    expect(reader.sent).toHaveLength(1);
    // one_track: track 1 is the reader's error marker; the PAN is Amex's (15 digits).
    expect(reader.sent[0]!.toString('latin1')).toMatch(/^%E\?;378282246310005=/);
    const bad = await post(controlUrl as string, { do: 'swipe', fault: 'wet' });
    expect(bad.status).toBe(400);
  });
});

describe('sim cloud --control', () => {
  it('switches cloud faults while it runs', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-control-'));
    stops.push(async () => rmSync(dir, { recursive: true, force: true }));
    const { terminal, cloud } = generateDevelopmentKeys(path.join(dir, 'keys'));
    writeCloudSideKeys(path.join(dir, 'cloud'), {
      ...cloud,
      devicePublicKeys: { 'lane-1': terminal.devicePublicKey },
    });
    const broker = await EmbeddedBroker.start();
    stops.push(() => broker.stop());
    const { core, controlUrl } = await started<{ core: CloudCore; controlUrl?: string }>(
      (ready, handle) =>
        simCloud(
          {
            keys: path.join(dir, 'cloud'),
            broker: broker.url,
            topicPrefix: 'pos/v1',
            fault: ['drop-acks:2'],
            control: 0,
          },
          handle,
          ready,
        ),
    );
    expect(core.faults.dropAcks).toBe(2);
    const declined = await post(controlUrl as string, { do: 'fault', fault: 'decline:05' });
    expect(declined.status).toBe(200);
    expect(core.faults).toMatchObject({ declineCode: '05', dropAcks: 2 });
    await post(controlUrl as string, { do: 'clear-faults' });
    expect(core.faults).toMatchObject({ declineCode: undefined, dropAcks: false });
    const bad = await post(controlUrl as string, { do: 'fault', fault: 'lose-acks' });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/one of: drop-acks, late-acks/);
  });
});
