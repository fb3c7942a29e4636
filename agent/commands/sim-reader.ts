/**
 * `pos-agent sim reader --kind serial|hid-msr|wedge|sred …`: a virtual card reader for
 * developers running `pos-agent run` against the simulator (issue 4, architecture.md §7).
 *
 * ```
 *  --kind serial   tcp://127.0.0.1:PORT (and --pty DIR → DIR/reader through socat)
 *                  swipes the --card on Enter, or every --every seconds
 *  --kind hid-msr | wedge | sred
 *                  refused with an explanation: a hid:// path needs a kernel HID device (hidraw),
 *                  and the virtual HID readers live only inside a process (the tests install
 *                  them in place of node-hid). A TCP stream would not keep report boundaries,
 *                  so there is no --via tcp for them.
 * ```
 */
import path from 'node:path';
import { createInterface } from 'node:readline';
import { AgentError } from '../../common/agent-error.js';
import {
  applyReaderControl,
  ReaderControlSchema,
  serveControl,
  type ControlServer,
} from '../../simulator/control.js';
import { hasSocat, serveSerialReaderPty } from '../../simulator/reader-server.js';
import { findTestCard, TEST_CARDS } from '../../simulator/test-cards.js';
import { SWIPE_FAULTS, type SwipeFault } from '../../simulator/virtual-hid-reader.js';
import {
  serveSerialReaderTcp,
  VirtualSerialReader,
} from '../../simulator/virtual-serial-reader.js';

/** Options of {@link simReader}, as given on the command line. */
export interface SimReaderOptions {
  /** `serial` is served; the HID kinds are explained and refused. */
  kind: string;
  /** `tcp://127.0.0.1:PORT` (loopback only; port 0 = free). */
  listen: string;
  /** Directory for a pseudo-terminal `DIR/reader` (socat). */
  pty?: string;
  /** Test card name or PAN (simulator/test-cards.ts). */
  card: string;
  /** Swipe every N seconds (1–3600) instead of on Enter. */
  everySeconds?: number;
  /** A swipe fault: bad_swipe, one_track, reversed, chip_card, garbage. */
  fault?: string;
  /** Port of the control endpoint on 127.0.0.1 (0 = a free one): swipe, unplug, replug. */
  control?: number;
}

const FAULTS: readonly SwipeFault[] = SWIPE_FAULTS;

/** Where the command reads Enter from and when it stops (injected by tests). */
export interface SimReaderIo {
  out: NodeJS.WritableStream;
  /** Lines typed here swipe the card (unless `everySeconds`). */
  input: NodeJS.ReadableStream;
  /** Resolves when the command should stop (SIGINT/SIGTERM in the CLI). */
  stopped: Promise<void>;
  /** Called once the reader is served, with its URLs (tests swipe through them). */
  onReady?: (urls: {
    tcp: string;
    pty?: string;
    reader: VirtualSerialReader;
    controlUrl?: string;
  }) => void;
}

/**
 * Serves a virtual serial card reader until `io.stopped` resolves.
 * @throws AgentError POS501 for a HID kind (with why and what to use instead), an unknown kind,
 *   card or fault, a malformed or non-loopback --listen, an --every outside 1–3600, --pty
 *   without socat, a --listen or --control port in use.
 */
export async function simReader(options: SimReaderOptions, io: SimReaderIo): Promise<void> {
  if (options.kind === 'hid-msr' || options.kind === 'wedge' || options.kind === 'sred')
    throw new AgentError(
      'POS501',
      `--kind ${options.kind}: a virtual HID reader cannot be served to another process — a hid:// path needs a kernel HID device (hidraw), which only real hardware or a kernel module (uhid) creates, and a TCP stream would not keep HID report boundaries. The virtual HID readers run in-process in the tests (simulator/virtual-hid-reader.ts, test/e2e/readers*.e2e.test.ts); to try the agent by hand use --kind serial and configure its tcp:// or pty path`,
    );
  if (options.kind !== 'serial')
    throw new AgentError(
      'POS501',
      `--kind must be serial, hid-msr, wedge or sred, not "${options.kind}"`,
    );
  const match = /^tcp:\/\/(127\.0\.0\.1|localhost):(\d{1,5})$/.exec(options.listen);
  if (match === null || Number(match[2]) > 65535)
    throw new AgentError(
      'POS501',
      `--listen must be tcp://127.0.0.1:PORT (loopback only, PORT 0–65535), e.g. tcp://127.0.0.1:7431, not "${options.listen}"`,
    );
  if (findTestCard(options.card) === undefined)
    throw new AgentError(
      'POS501',
      `unknown test card "${options.card}"; one of: ${TEST_CARDS.map((c) => c.name).join(', ')}`,
    );
  const fault = options.fault as SwipeFault | undefined;
  if (fault !== undefined && !FAULTS.includes(fault))
    throw new AgentError(
      'POS501',
      `--fault must be one of ${FAULTS.join(', ')}, not "${options.fault}"`,
    );
  const every = options.everySeconds;
  if (every !== undefined && !(Number.isInteger(every) && every >= 1 && every <= 3600))
    throw new AgentError('POS501', `--every must be 1–3600 seconds, not ${every}`);
  const controlPort = options.control;
  if (
    controlPort !== undefined &&
    !(Number.isInteger(controlPort) && controlPort >= 0 && controlPort <= 65535)
  )
    throw new AgentError(
      'POS501',
      `--control must be a port 0–65535 (0 = a free one), not ${controlPort}`,
    );
  if (options.pty !== undefined && !hasSocat())
    throw new AgentError(
      'POS501',
      '--pty needs socat: install it (apt-get install socat, brew install socat) or use the tcp:// URL alone',
    );

  const reader = new VirtualSerialReader();
  let tcp;
  try {
    tcp = await serveSerialReaderTcp(reader, { port: Number(match[2]) });
  } catch (cause) {
    throw new AgentError(
      'POS501',
      `--listen ${options.listen}: cannot listen (${(cause as NodeJS.ErrnoException).code ?? String(cause)}); is another reader running? Pick another port`,
    );
  }
  let control: ControlServer | undefined;
  if (controlPort !== undefined) {
    try {
      control = await serveControl({
        port: controlPort,
        schema: ReaderControlSchema,
        apply: (command) => {
          const result = applyReaderControl(reader, command, { card: options.card, fault });
          if (command.do === 'swipe') io.out.write('  swiped (control)\n');
          return result;
        },
        state: () => ({ connected: reader.connected, card: options.card, fault: fault ?? null }),
      });
    } catch (cause) {
      await tcp.stop();
      throw new AgentError(
        'POS501',
        `--control ${controlPort}: cannot listen on 127.0.0.1:${controlPort} (${(cause as NodeJS.ErrnoException).code ?? String(cause)}); pick another port or 0`,
      );
    }
  }
  const pty =
    options.pty === undefined
      ? undefined
      : await serveSerialReaderPty(reader, { dir: path.resolve(options.pty) });
  io.out.write(`virtual serial card reader on ${tcp.url}\n`);
  if (pty !== undefined) io.out.write(`  and on the pseudo-terminal ${pty.path}\n`);
  if (control !== undefined)
    io.out.write(`  control: ${control.url}  (curl -d '{"do":"swipe"}' ${control.url})\n`);
  io.out.write(
    `  configure: { "name": "sim-serial", "kind": "serial", "path": "${pty?.path ?? tcp.url}" }\n`,
  );
  const what = `test card "${options.card}"${fault === undefined ? '' : ` with fault ${fault}`}`;
  io.out.write(
    every === undefined
      ? `  press Enter to swipe the ${what}\n`
      : `  swiping the ${what} every ${every} s\n`,
  );
  const swipe = (): void => {
    const delivered = reader.swipe(options.card, fault === undefined ? {} : { fault });
    io.out.write(delivered ? '  swiped\n' : '  swiped, but no agent is connected\n');
  };
  const timer = every === undefined ? undefined : setInterval(swipe, every * 1000);
  const lines = every === undefined ? createInterface({ input: io.input }) : undefined;
  lines?.on('line', swipe);
  io.onReady?.({
    tcp: tcp.url,
    ...(pty === undefined ? {} : { pty: pty.path }),
    ...(control === undefined ? {} : { controlUrl: control.url }),
    reader,
  });
  try {
    await io.stopped;
  } finally {
    if (timer !== undefined) clearInterval(timer);
    lines?.close();
    await control?.stop();
    await pty?.stop();
    await tcp.stop();
  }
}
