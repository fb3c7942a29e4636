/**
 * No stack traces on bad command-line input (issue 14, rule 5): `pos-agent demo` and every
 * `pos-agent sim …` command answer a bad option with `error POSxxx: …` naming the option and what
 * is accepted, and exit 2; `sim broker` on a busy port is such an error, not a hang; `sim cloud`
 * without a broker prints one line per link change, not one per reconnect attempt.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simReader } from '../../agent/commands/sim-reader.js';
import { generateDevelopmentKeys, writeCloudSideKeys } from '../../agent/keys.js';
import { simBroker, simCloud, simPinPad, type SimIo } from '../../agent/sim-commands.js';
import { EmbeddedBroker } from '../../simulator/broker.js';
import { cliBundle, hasStackTrace, runCli } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

// Bundling the CLI takes seconds, many on a loaded machine: once, before the spawned cases.
beforeAll(() => cliBundle().then(() => undefined), 180_000);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pos-sim-cli-'));
  const { terminal, cloud } = generateDevelopmentKeys(path.join(dir, 'keys'));
  writeCloudSideKeys(path.join(dir, 'keys', 'cloud'), {
    ...cloud,
    devicePublicKeys: { 'lane-1': terminal.devicePublicKey },
  });
});

/** Output and stop of an in-process sim command; `stop()` ends it. */
function io(): SimIo & { text: () => string; stop: () => void } {
  const out: string[] = [];
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  return {
    out: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream,
    stopped,
    stop,
    text: () => out.join(''),
  };
}
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bad input to demo and sim: a coded error, exit 2, no stack trace', () => {
  // Through the real command line: the exit code and what stderr shows.
  const spawned: Array<{ args: string[]; stderr: RegExp }> = [
    {
      args: ['demo', '--transport', 'foo'],
      stderr: /^error POS501: --transport must be auto, pty, tcp or mock, not "foo"\n$/,
    },
    {
      args: ['demo', '--payments', 'x'],
      stderr: /argument 'x' is invalid\. must be a positive integer \(POS501\)/,
    },
    {
      args: ['sim', 'pinpad', '--fault', 'pin-timeot'],
      stderr: /^error POS501: --fault: unknown PIN pad fault "pin-timeot"; one of: bad-lrc/,
    },
    { args: ['sim', 'reader'], stderr: /required option '--kind <kind>' not specified/ },
  ];
  it.each(spawned)(
    'pos-agent $args',
    async ({ args, stderr }) => {
      const run = await runCli(args, { killAfterMs: 60_000 });
      expect(run.stderr).toMatch(stderr);
      expect(hasStackTrace(run.stderr)).toBe(false);
      expect(run.code).toBe(2);
    },
    90_000,
  );

  it('the stack-trace check finds a real one (control)', () => {
    expect(hasStackTrace(new Error('x').stack ?? '')).toBe(true);
  });

  // The same commands in process: each refusal is an AgentError the CLI prints as above.
  const keys = (): string => path.join(dir, 'keys', 'cloud');
  const inProcess: Array<{ name: string; run: () => Promise<void>; error: RegExp }> = [
    {
      name: 'sim pinpad --card nope',
      run: () => simPinPad({ listen: 'tcp://127.0.0.1:0', card: 'nope' }, io()),
      error: /^POS501 unknown test card "nope"; one of: visa,.* or none/,
    },
    {
      name: 'sim pinpad --fault slow-reply:soon',
      run: () =>
        simPinPad({ listen: 'tcp://127.0.0.1:0', card: 'visa', fault: ['slow-reply:soon'] }, io()),
      error: /^POS501 --fault: fault slow-reply takes milliseconds/,
    },
    {
      name: 'sim pinpad --fault unplug',
      run: () => simPinPad({ listen: 'tcp://127.0.0.1:0', card: 'visa', fault: ['unplug'] }, io()),
      error: /^POS501 --fault unplug cannot be armed at start/,
    },
    {
      name: 'sim pinpad --listen http://x',
      run: () => simPinPad({ listen: 'http://x', card: 'visa' }, io()),
      error: /^POS501 --listen must be tcp:\/\/host:port/,
    },
    {
      name: 'sim pinpad --control abc',
      run: () =>
        simPinPad({ listen: 'tcp://127.0.0.1:0', card: 'visa', control: Number.NaN }, io()),
      error: /^POS501 --control must be a port 0–65535/,
    },
    {
      name: 'sim broker --port 70000',
      run: () => simBroker({ port: 70000 }, io()),
      error: /^POS501 --port must be 0–65535, not 70000/,
    },
    {
      name: 'sim cloud --keys /nonexistent',
      run: () =>
        simCloud(
          { keys: '/nonexistent', broker: 'mqtt://127.0.0.1:1883', topicPrefix: 'pos/v1' },
          io(),
        ),
      error: /^POS502 cannot read the simulator's cloud keys/,
    },
    {
      name: 'sim cloud --fault lose-acks',
      run: () =>
        simCloud(
          {
            keys: keys(),
            broker: 'mqtt://127.0.0.1:1883',
            topicPrefix: 'pos/v1',
            fault: ['lose-acks'],
          },
          io(),
        ),
      error: /^POS501 --fault: unknown cloud fault "lose-acks"; one of: drop-acks/,
    },
    {
      name: 'sim cloud --broker localhost:1883',
      run: () => simCloud({ keys: keys(), broker: 'localhost:1883', topicPrefix: 'pos/v1' }, io()),
      error: /^POS501 --broker must be mqtt:\/\/host:port/,
    },
    {
      name: 'sim reader --fault wet',
      run: () =>
        simReader(
          { kind: 'serial', listen: 'tcp://127.0.0.1:0', card: 'visa', fault: 'wet' },
          { ...io(), input: process.stdin },
        ),
      error: /^POS501 --fault must be one of bad_swipe/,
    },
    {
      name: 'sim reader --control -1',
      run: () =>
        simReader(
          { kind: 'serial', listen: 'tcp://127.0.0.1:0', card: 'visa', control: -1 },
          { ...io(), input: process.stdin },
        ),
      error: /^POS501 --control must be a port/,
    },
  ];
  it.each(inProcess)('$name', async ({ run, error }) => {
    const failure = await run().then(
      () => undefined,
      (e: unknown) => e as { code: string; reason: string },
    );
    expect(`${failure?.code} ${failure?.reason}`).toMatch(error);
  });
});

describe('sim broker on a busy port', () => {
  let busy: Server;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
  });
  afterAll(() => new Promise<void>((resolve) => busy.close(() => resolve())));

  it('exits 2 with POS501 naming the port, and does not hang', { timeout: 90_000 }, async () => {
    const port = (busy.address() as { port: number }).port;
    const run = await runCli(['sim', 'broker', '--port', String(port)], { killAfterMs: 60_000 });
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(
      `error POS501: --port ${port} is in use on 127.0.0.1: stop the other broker (e.g. mosquitto) or pick another --port\n`,
    );
  });

  it('EmbeddedBroker.start on a busy port rejects and leaves no timer behind (regression: the CLI hung)', async () => {
    const port = (busy.address() as { port: number }).port;
    const timers = (): number =>
      process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await expect(EmbeddedBroker.start({ port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    // aedes' heartbeat interval kept Node alive after the error was printed.
    expect(timers()).toBe(before);
  });
});

describe('sim cloud without a broker', () => {
  it('says once that it waits, nothing per reconnect attempt, then one line per link change', async () => {
    // A "broker" that accepts and drops every connection: each reconnect attempt is counted here.
    let attempts = 0;
    const sockets = new Set<Socket>();
    let dropping = true;
    const broker = await EmbeddedBroker.start();
    const port = broker.port;
    await broker.stop();
    const refuser = createServer((socket) => {
      attempts += 1;
      sockets.add(socket);
      socket.destroy();
    });
    await new Promise<void>((resolve) => refuser.listen(port, '127.0.0.1', () => resolve()));
    const out: string[] = [];
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const running = simCloud(
      {
        keys: path.join(dir, 'keys', 'cloud'),
        broker: `mqtt://127.0.0.1:${port}`,
        topicPrefix: 'pos/v1',
      },
      { out: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream, stopped },
    );
    try {
      await until(() => attempts >= 3, { what: 'three reconnect attempts' });
      const waiting = out.join('');
      expect(waiting.split('\n').filter((l) => l.includes('waiting for the broker'))).toHaveLength(
        1,
      );
      expect(waiting).not.toMatch(/link lost|warn|error|POS301/);
      dropping = false;
      await new Promise<void>((resolve) => refuser.close(() => resolve()));
      await broker.start();
      await until(() => out.join('').includes(': connected'), { what: 'the connected line' });
      await broker.stop();
      await until(() => out.join('').includes('link lost'), { what: 'the link lost line' });
      const linkLines = out
        .join('')
        .split('\n')
        .filter((l) => /connected|link lost|waiting/.test(l));
      expect(linkLines).toEqual([
        `  waiting for the broker at mqtt://127.0.0.1:${port}`,
        `  broker mqtt://127.0.0.1:${port}: connected`,
        `  broker mqtt://127.0.0.1:${port}: link lost, reconnecting every second`,
      ]);
    } finally {
      stop();
      await running;
      if (dropping) await new Promise<void>((resolve) => refuser.close(() => resolve()));
      await broker.stop();
    }
  });
});
