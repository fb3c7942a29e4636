/**
 * `pos-agent sim …`: the simulator's parts as long-running commands, for developers who run the
 * agent with `pos-agent run` against them (architecture.md §7, issue 14).
 *
 * ```
 *  sim pinpad   --listen tcp://… [--pty DIR] [--card NAME|none] [--fault F]… [--control PORT]
 *  sim reader   --kind serial [--listen …] [--card NAME] [--fault F] [--every N] [--control PORT]
 *  sim broker   [--port N]
 *  sim cloud    --keys DIR [--broker URL] [--fault F]… [--control PORT]
 *  sim claim    --keys DIR --ca-cert PEM --ca-key PEM --code CODE:TENANT:STORE… [--broker URL]
 *  sim scenario FILE…
 * ```
 *
 * Every fault switch of the simulator is reachable here (simulator/faults.ts is the list, and the
 * help of each command prints it). Bad options are an AgentError POS501 naming the option, the
 * bad value and what is accepted; the CLI prints it without a stack trace and exits 2.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../common/agent-error.js';
import type { SyncLogger } from '../cloud-sync/sync-worker.js';
import { openSealedCard } from '../drivers/boundary/sealed-card.js';
import { EmbeddedBroker } from '../simulator/broker.js';
import { ClaimService } from '../simulator/claim-service.js';
import { CloudCore, type CloudFaults } from '../simulator/cloud-core.js';
import {
  applyCloudControl,
  applyPadControl,
  CloudControlSchema,
  type ControlServer,
  PadControlSchema,
  padState,
  serveControl,
} from '../simulator/control.js';
import { FaultSpecError, parseCloudFault, parsePadFault } from '../simulator/faults.js';
import { servePty, serveTcp } from '../simulator/pad-server.js';
import { findTestCard, TEST_CARDS } from '../simulator/test-cards.js';
import { type PadFault, VirtualPinPad } from '../simulator/virtual-pin-pad.js';
import { loadCloudSideKeys, writeCloudSideKeys } from './keys.js';

/** Where a sim command writes and when it stops (the CLI: stdout and SIGINT/SIGTERM). */
export interface SimIo {
  out: NodeJS.WritableStream;
  /** Resolves when the command should stop. */
  stopped: Promise<void>;
}

/** Resolves on SIGINT or SIGTERM. */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

function optionError(message: string): AgentError {
  return new AgentError('POS501', message);
}

/** Runs `parse`, turning a {@link FaultSpecError} into POS501 for `--option`. */
function faultOption<T>(option: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof FaultSpecError) throw optionError(`${option}: ${error.message}`);
    throw error;
  }
}

/** Checks a `--control` port: 0 (a free one) to 65535. @throws AgentError POS501 */
function controlPort(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0 || value > 65535)
    throw optionError(`--control must be a port 0–65535 (0 = a free one), not ${value}`);
  return value;
}

/**
 * Starts a control endpoint, naming the port in the error when it is taken.
 * @throws AgentError POS501 when the port cannot be bound.
 */
async function startControl<T>(
  port: number,
  options: Omit<Parameters<typeof serveControl<T>>[0], 'port'>,
): Promise<ControlServer> {
  try {
    return await serveControl({ port, ...options });
  } catch (cause) {
    throw optionError(
      `--control ${port}: cannot listen on 127.0.0.1:${port} (${(cause as NodeJS.ErrnoException).code ?? String(cause)}); pick another port or 0 for a free one`,
    );
  }
}

function unknownCard(name: string): AgentError {
  return optionError(
    `unknown test card "${name}"; one of: ${TEST_CARDS.map((c) => c.name).join(', ')}, or none (docs/test-cards.md)`,
  );
}

/** Options of {@link simPinPad}. */
export interface SimPinPadOptions {
  /** `tcp://host:port` (port 0 = a free one). */
  listen: string;
  /** Directory for a pseudo-terminal `DIR/pad` (socat). */
  pty?: string | undefined;
  /** Test card presented to every read, or `none` to wait for one (control endpoint). */
  card: string;
  /** Faults armed for every payment, `NAME[:ARG]` (simulator/faults.ts). */
  fault?: readonly string[] | undefined;
  /** Port of the control endpoint on 127.0.0.1 (0 = a free one). */
  control?: number | undefined;
}

/**
 * Serves a virtual PIN pad on `tcp://host:port` (and a pty with `--pty DIR`) until `io.stopped`.
 *
 * @param onReady — called once serving, with the pad and its URLs (tests).
 * @throws AgentError POS501 for an unknown card or fault, a malformed --listen URL, a --listen
 *   or --control port in use.
 */
export async function simPinPad(
  options: SimPinPadOptions,
  io: SimIo,
  onReady?: (ready: { pad: VirtualPinPad; url: string; controlUrl?: string }) => void,
): Promise<void> {
  const match = /^tcp:\/\/([^:/]+):(\d{1,5})$/.exec(options.listen);
  if (match === null || Number(match[2]) > 65535)
    throw optionError(
      `--listen must be tcp://host:port, e.g. tcp://127.0.0.1:7421, not "${options.listen}"`,
    );
  if (options.card !== 'none' && findTestCard(options.card) === undefined)
    throw unknownCard(options.card);
  const faults: PadFault[] = (options.fault ?? []).map((spec) =>
    faultOption('--fault', () => parsePadFault(spec)),
  );
  if (faults.some((f) => f.kind === 'unplug'))
    throw optionError(
      '--fault unplug cannot be armed at start: send {"do":"unplug"} to the --control endpoint while it runs',
    );
  const port = controlPort(options.control);

  const pad = new VirtualPinPad(options.card === 'none' ? {} : { autoPresent: options.card });
  pad.setStandingFaults(faults);
  let tcp;
  try {
    tcp = await serveTcp(pad, { host: match[1] as string, port: Number(match[2]) });
  } catch (cause) {
    throw optionError(
      `--listen ${options.listen}: cannot listen (${(cause as NodeJS.ErrnoException).code ?? String(cause)}); is another pad running? Pick another port`,
    );
  }
  const control =
    port === undefined
      ? undefined
      : await startControl(port, {
          schema: PadControlSchema,
          apply: (command) => applyPadControl(pad, command),
          state: () => padState(pad),
        }).catch(async (error: unknown) => {
          await tcp.stop();
          throw error;
        });
  io.out.write(
    `virtual PIN pad on ${tcp.url}, ${
      options.card === 'none'
        ? 'waiting for a card from the control endpoint (readers can win payments)'
        : `presenting test card "${options.card}" to every read`
    }\n`,
  );
  if (faults.length > 0)
    io.out.write(`  faults armed for every payment: ${(options.fault ?? []).join(', ')}\n`);
  if (control !== undefined)
    io.out.write(
      `  control: ${control.url}  (curl -d '{"do":"present","card":"visa"}' ${control.url})\n`,
    );
  const pty =
    options.pty === undefined ? undefined : await servePty(pad, { dir: path.resolve(options.pty) });
  if (pty !== undefined) io.out.write(`  and on the pseudo-terminal ${pty.path}\n`);
  pad.on('message', (m) => io.out.write(`  host → pad: message ${m.id}\n`));
  onReady?.({
    pad,
    url: tcp.url,
    ...(control === undefined ? {} : { controlUrl: control.url }),
  });
  try {
    await io.stopped;
  } finally {
    await control?.stop();
    await pty?.stop();
    await tcp.stop();
  }
}

/**
 * Runs the embedded aedes broker on 127.0.0.1:port until `io.stopped`.
 * @throws AgentError POS501 when the port is in use or cannot be bound (nothing keeps running).
 */
export async function simBroker(
  options: { port: number },
  io: SimIo,
  onReady?: (broker: EmbeddedBroker) => void,
): Promise<void> {
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)
    throw optionError(`--port must be 0–65535, not ${options.port}`);
  let broker: EmbeddedBroker;
  try {
    broker = await EmbeddedBroker.start({ port: options.port });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw optionError(
      code === 'EADDRINUSE'
        ? `--port ${options.port} is in use on 127.0.0.1: stop the other broker (e.g. mosquitto) or pick another --port`
        : `cannot listen on 127.0.0.1:${options.port} (${code ?? String(cause)}): pick another --port`,
    );
  }
  io.out.write(`MQTT broker (aedes, MQTT 3.1.1) on ${broker.url}\n`);
  onReady?.(broker);
  try {
    await io.stopped;
  } finally {
    await broker.stop();
  }
}

/** Options of {@link simCloud}. */
export interface SimCloudOptions {
  /** The simulator keys directory written by `pos-agent init-dev` (DIR/cloud). */
  keys: string;
  broker: string;
  topicPrefix: string;
  /** Fault switches, `NAME[:ARG]` (simulator/faults.ts). */
  fault?: readonly string[] | undefined;
  /** Port of the control endpoint on 127.0.0.1 (0 = a free one). */
  control?: number | undefined;
}

/**
 * A logger for the command line: one readable line per warning or error, nothing per record (the
 * batch lines say that), and nothing per failed reconnect (the link lines say that).
 */
function cliLogger(out: NodeJS.WritableStream): SyncLogger {
  const line =
    (level: string) =>
    (fields: object, message: string): void => {
      if (message === 'cloud core broker link') return;
      const code = (fields as { code?: unknown }).code;
      out.write(`  ${level}: ${message}${typeof code === 'string' ? ` (${code})` : ''}\n`);
    };
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: line('warn'),
    error: line('error'),
  };
}

/**
 * Runs the cloud core simulator with the keys `pos-agent init-dev` wrote to DIR/cloud, until
 * `io.stopped`. It does not need the broker at start: it says once that it waits, and prints one
 * line per change of the broker link.
 *
 * @throws AgentError POS502 when the keys cannot be read; POS501 for a bad broker URL, fault or
 *   control port.
 */
export async function simCloud(
  options: SimCloudOptions,
  io: SimIo,
  onReady?: (ready: { core: CloudCore; controlUrl?: string }) => void,
): Promise<void> {
  if (!/^mqtts?:\/\/[^/\s]+$/.test(options.broker))
    throw optionError(
      `--broker must be mqtt://host:port or mqtts://host:port, not "${options.broker}"`,
    );
  const faults: Partial<CloudFaults> = {};
  for (const spec of options.fault ?? [])
    Object.assign(
      faults,
      faultOption('--fault', () => parseCloudFault(spec)),
    );
  const port = controlPort(options.control);
  const keys = loadCloudSideKeys(options.keys);
  const core = await CloudCore.start({
    brokerUrl: options.broker,
    topicPrefix: options.topicPrefix,
    signer: { secretKey: keys.cloudSecretKey },
    openSealed: (sealed) => openSealedCard(sealed, keys.vaultSecretKey),
    logger: cliLogger(io.out),
    connectTimeoutMs: 0,
    // Issue 10: the dedupe survives a restart of the simulator (DIR/cloud/ledger.db).
    ledgerFile: path.join(options.keys, 'ledger.db'),
  });
  core.setFaults(faults);
  for (const [deviceId, publicKey] of keys.devicePublicKeys)
    core.registerDevice(deviceId, publicKey);
  core.on('link', (state) =>
    io.out.write(
      state === 'connected'
        ? `  broker ${options.broker}: connected\n`
        : `  broker ${options.broker}: link lost, reconnecting every second\n`,
    ),
  );
  core.on('batch', ({ deviceId, results }) => {
    for (const r of results)
      io.out.write(
        `  ${deviceId} ${r.key}: ${r.status}${r.outcome !== undefined ? ` ${r.outcome}` : ''}${r.declineCode !== undefined ? ` ${r.declineCode}` : ''}\n`,
      );
  });
  let control: ControlServer | undefined;
  try {
    control =
      port === undefined
        ? undefined
        : await startControl(port, {
            schema: CloudControlSchema,
            apply: (command) => applyCloudControl(core, command),
            state: () => ({
              connected: core.connected,
              faults: core.faults,
              counters: core.counters(),
            }),
          });
  } catch (error) {
    await core.stop();
    throw error;
  }
  io.out.write(
    `cloud core simulator for ${options.broker}, devices: ${[...keys.devicePublicKeys.keys()].join(', ')}\n`,
  );
  if ((options.fault ?? []).length > 0)
    io.out.write(`  faults: ${(options.fault ?? []).join(', ')}\n`);
  if (control !== undefined)
    io.out.write(
      `  control: ${control.url}  (curl -d '{"do":"fault","fault":"decline:05"}' ${control.url})\n`,
    );
  if (!core.connected) io.out.write(`  waiting for the broker at ${options.broker}\n`);
  onReady?.({ core, ...(control === undefined ? {} : { controlUrl: control.url }) });
  try {
    await io.stopped;
  } finally {
    await control?.stop();
    await core.stop();
  }
}

/** Options of {@link simClaim}. */
export interface SimClaimOptions {
  /** The simulator's cloud keys (DIR/cloud of init-dev): signs responses; devices.json grows. */
  keys: string;
  /** Broker URL the claim service connects to (the cloud side; plaintext or with user:password). */
  broker: string;
  topicPrefix: string;
  /** Fleet CA certificate and key (PEM files) that sign the client certificates. */
  caCert: string;
  caKey: string;
  /** Registration codes, each `CODE:TENANT:STORE`. */
  code: readonly string[];
  /** Validity of issued certificates, days (1–3650). */
  days: number;
}

/**
 * Runs the claim service of registration by claim (simulator/claim-service.ts) until
 * `io.stopped`: terminals running `pos-agent provision --claim-cert … --registration-code CODE`
 * get a client certificate signed by the fleet CA, and their device key is added to
 * `KEYS/devices.json`, so a `sim cloud --keys KEYS` started afterwards accepts them.
 *
 * @throws AgentError POS501 for a malformed code, URL or days, a CA file that cannot be read, or
 *   openssl missing; POS502 when the keys cannot be read; POS301 when the broker is unreachable.
 */
export async function simClaim(
  options: SimClaimOptions,
  io: SimIo,
  onReady?: (service: ClaimService) => void,
): Promise<void> {
  if (!/^mqtts?:\/\/[^/\s]+$/.test(options.broker))
    throw optionError(
      `--broker must be mqtt://host:port or mqtts://host:port, not "${options.broker}"`,
    );
  if (options.code.length === 0)
    throw optionError(
      '--code is required: give each registration code as CODE:TENANT:STORE, e.g. --code REG-0042-3:acme:store-42',
    );
  const codes = new Map<string, { tenant: string; store: string }>();
  for (const spec of options.code) {
    const m = /^([A-Za-z0-9-]{6,64}):([a-z0-9][a-z0-9-]{0,63}):([a-z0-9][a-z0-9-]{0,63})$/.exec(
      spec,
    );
    if (m === null)
      throw optionError(
        `--code must be CODE:TENANT:STORE (code 6–64 of A–Z a–z 0–9 -, tenant and store of a–z 0–9 -), e.g. REG-0042-3:acme:store-42, not "${spec}"`,
      );
    codes.set(m[1] as string, { tenant: m[2] as string, store: m[3] as string });
  }
  if (!Number.isInteger(options.days) || options.days < 1 || options.days > 3650)
    throw optionError(`--days must be 1–3650, not ${options.days}`);
  for (const [flag, file] of [
    ['--ca-cert', options.caCert],
    ['--ca-key', options.caKey],
  ] as const) {
    try {
      readFileSync(file);
    } catch (cause) {
      throw optionError(
        `${flag} ${file} cannot be read (${(cause as NodeJS.ErrnoException).code ?? String(cause)}): give the fleet CA's PEM file`,
      );
    }
  }
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    throw optionError(
      'sim claim signs certificates with openssl, which is not installed: apt-get install openssl',
    );
  }
  const keys = loadCloudSideKeys(options.keys);
  const devices = new Map(keys.devicePublicKeys);
  const service = await ClaimService.start({
    brokerUrl: options.broker,
    topicPrefix: options.topicPrefix,
    signer: { secretKey: keys.cloudSecretKey },
    ca: { cert: path.resolve(options.caCert), key: path.resolve(options.caKey) },
    certificateDays: options.days,
    codes,
    onRegistered: (deviceId, publicKey) => {
      devices.set(deviceId, publicKey);
      writeCloudSideKeys(options.keys, {
        vaultSecretKey: keys.vaultSecretKey,
        cloudSecretKey: keys.cloudSecretKey,
        devicePublicKeys: Object.fromEntries(devices),
      });
      io.out.write(
        `  ${deviceId}: claim accepted, certificate issued, device key added to ${path.join(options.keys, 'devices.json')}\n`,
      );
    },
    onRejected: (deviceId, reason) => io.out.write(`  ${deviceId}: claim refused: ${reason}\n`),
  });
  io.out.write(
    `claim service on ${options.broker} (${options.topicPrefix}/claims/+/request), codes: ${[...codes.keys()].join(', ')}\n`,
  );
  onReady?.(service);
  try {
    await io.stopped;
  } finally {
    await service.stop();
  }
}
