/**
 * Control of a running simulator (issue 14): change cards and faults while a virtual PIN pad,
 * card reader or cloud core runs, from another process (`curl`, a test, a POS app's own test
 * suite) or from the scenario runner, which applies the same commands in process.
 *
 * ```
 *  GET  http://127.0.0.1:PORT/          → 200 { state }                 what the simulator does now
 *  POST http://127.0.0.1:PORT/  { "do": "present", "card": "visa" }     → 200 { ok: true, state }
 *                                 bad JSON, unknown command or value    → 400 { error: { code, message } }
 * ```
 *
 * Commands (a zod schema each, so a typo is answered with what was expected):
 * - PIN pad: `present` a card for the next read, `card` (the card for every read, or `none` to
 *   wait), `fault` (one-shot), `faults` (standing: once per payment), `clear-faults`, `unplug`,
 *   `replug`, `event` (message 90).
 * - Reader: `swipe` (now, optionally with a card and fault), `unplug`, `replug`.
 * - Cloud core: `fault` (`drop-acks:2`, `decline:51`, …), `clear-faults`.
 *
 * Loopback only: the endpoint has no authentication, so it never listens beyond 127.0.0.1.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { CloudCore } from './cloud-core.js';
import {
  CLOUD_FAULT_NAMES,
  FaultSpecError,
  PAD_FAULT_NAMES,
  parseCloudFault,
  parsePadFault,
  parseSwipeFault,
} from './faults.js';
import { findTestCard, TEST_CARDS } from './test-cards.js';
import type { VirtualSerialReader } from './virtual-serial-reader.js';
import { SWIPE_FAULTS } from './virtual-hid-reader.js';
import type { VirtualPinPad } from './virtual-pin-pad.js';

const cardName = z.string().refine((c) => findTestCard(c) !== undefined, {
  message: `unknown test card; one of: ${TEST_CARDS.map((c) => c.name).join(', ')}`,
});
const entryMode = z.enum(['S', 'C', 'T']);

/** Commands of a virtual PIN pad's control endpoint. */
export const PadControlSchema = z.discriminatedUnion('do', [
  z.strictObject({
    do: z.literal('present'),
    card: cardName,
    entryMode: entryMode.optional(),
    expiry: z
      .string()
      .regex(/^\d{4}$/, 'YYMM')
      .optional(),
  }),
  z.strictObject({ do: z.literal('card'), card: z.union([cardName, z.literal('none')]) }),
  z.strictObject({
    do: z.literal('fault'),
    fault: z.string().describe(`one of ${PAD_FAULT_NAMES.join(', ')}`),
  }),
  z.strictObject({ do: z.literal('faults'), faults: z.array(z.string()) }),
  z.strictObject({ do: z.literal('clear-faults') }),
  z.strictObject({ do: z.literal('unplug') }),
  z.strictObject({ do: z.literal('replug') }),
  z.strictObject({
    do: z.literal('event'),
    event: z.enum(['card_inserted', 'card_removed', 'tamper', 'low_battery']),
  }),
]);
/** One command of {@link PadControlSchema}. */
export type PadControl = z.infer<typeof PadControlSchema>;

/** Commands of a virtual serial reader's control endpoint. */
export const ReaderControlSchema = z.discriminatedUnion('do', [
  z.strictObject({
    do: z.literal('swipe'),
    card: cardName.optional(),
    fault: z.enum(SWIPE_FAULTS).optional(),
  }),
  z.strictObject({ do: z.literal('unplug') }),
  z.strictObject({ do: z.literal('replug') }),
]);
/** One command of {@link ReaderControlSchema}. */
export type ReaderControl = z.infer<typeof ReaderControlSchema>;

/** Commands of the cloud core simulator's control endpoint. */
export const CloudControlSchema = z.discriminatedUnion('do', [
  z.strictObject({
    do: z.literal('fault'),
    fault: z.string().describe(`one of ${CLOUD_FAULT_NAMES.join(', ')}`),
  }),
  z.strictObject({ do: z.literal('clear-faults') }),
]);
/** One command of {@link CloudControlSchema}. */
export type CloudControl = z.infer<typeof CloudControlSchema>;

/** What a pad's `GET /` answers. */
export function padState(pad: VirtualPinPad): Record<string, unknown> {
  return {
    connected: pad.connected,
    unplugged: pad.unplugged,
    queuedCards: pad.queuedCards,
    standingFaults: pad.standingFaults.map((f) => f.kind),
    armedFaults: pad.armedFaults.map((f) => f.kind),
    display: pad.display,
    lastResult: pad.lastResult ?? null,
  };
}

/**
 * Applies one pad command.
 * @throws FaultSpecError for an unknown fault or argument.
 */
export function applyPadControl(pad: VirtualPinPad, command: PadControl): void {
  switch (command.do) {
    case 'present':
      pad.presentCard(command.card, {
        ...(command.entryMode === undefined ? {} : { entryMode: command.entryMode }),
        ...(command.expiry === undefined ? {} : { expiry: command.expiry }),
      });
      return;
    case 'card':
      pad.setAutoPresent(command.card === 'none' ? undefined : command.card);
      return;
    case 'fault':
      pad.injectFault(parsePadFault(command.fault));
      return;
    case 'faults': {
      const faults = command.faults.map(parsePadFault);
      if (faults.some((f) => f.kind === 'unplug'))
        throw new FaultSpecError('unplug cannot be a standing fault: send { "do": "unplug" }');
      pad.setStandingFaults(faults);
      return;
    }
    case 'clear-faults':
      pad.setStandingFaults([]);
      pad.clearFaults();
      return;
    case 'unplug':
      pad.injectFault({ kind: 'unplug' });
      return;
    case 'replug':
      pad.replug();
      return;
    case 'event':
      pad.sendEvent(command.event);
      return;
  }
}

/** Applies one reader command; `defaults` are the card and fault given on the command line. */
export function applyReaderControl(
  reader: VirtualSerialReader,
  command: ReaderControl,
  defaults: { card: string; fault?: string | undefined },
): { delivered?: boolean } {
  switch (command.do) {
    case 'swipe': {
      const fault = command.fault ?? defaults.fault;
      const delivered = reader.swipe(
        command.card ?? defaults.card,
        fault === undefined ? {} : { fault: parseSwipeFault(fault) },
      );
      return { delivered };
    }
    case 'unplug':
      reader.unplug();
      return {};
    case 'replug':
      reader.replug();
      return {};
  }
}

/**
 * Applies one cloud command.
 * @throws FaultSpecError for an unknown fault or argument.
 */
export function applyCloudControl(core: CloudCore, command: CloudControl): void {
  if (command.do === 'clear-faults') core.clearFaults();
  else core.setFaults(parseCloudFault(command.fault));
}

/** A running control endpoint. */
export interface ControlServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 65_536) throw new FaultSpecError('command larger than 64 KiB');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Zod issues as one line: `fault: Required; card: unknown test card …`. */
export function issuesLine(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length === 0 ? 'command' : i.path.join('.')}: ${i.message}`)
    .join('; ');
}

/**
 * Serves a control endpoint on `127.0.0.1:port` (0 = a free port).
 *
 * @param options.schema — the commands accepted (e.g. {@link PadControlSchema}).
 * @param options.apply — runs a command; a thrown {@link FaultSpecError} is answered 400.
 * @param options.state — what `GET /` answers.
 * @throws Error (EADDRINUSE …) when the port cannot be bound.
 */
export async function serveControl<T>(options: {
  port: number;
  schema: z.ZodType<T>;
  apply: (command: T) => unknown;
  state: () => unknown;
}): Promise<ControlServer> {
  const server: Server = createServer((request, response) => {
    const answer = (status: number, body: unknown): void => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(`${JSON.stringify(body)}\n`);
    };
    const bad = (message: string): void =>
      answer(400, { error: { code: 'POS400', message: `${message} (POS400)` } });
    if (request.method === 'GET' && (request.url ?? '/') === '/') {
      answer(200, { state: options.state() });
      return;
    }
    if (request.method !== 'POST' || (request.url ?? '/') !== '/') {
      answer(404, {
        error: { code: 'POS405', message: 'only GET / and POST / exist here (POS405)' },
      });
      return;
    }
    readBody(request).then(
      (text) => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          bad('the body is not JSON: send e.g. {"do":"present","card":"visa"}');
          return;
        }
        const parsed = options.schema.safeParse(json);
        if (!parsed.success) {
          bad(`bad command: ${issuesLine(parsed.error)}`);
          return;
        }
        try {
          const result = options.apply(parsed.data);
          answer(200, { ok: true, ...(result ?? {}), state: options.state() });
        } catch (error) {
          if (error instanceof FaultSpecError) bad(error.message);
          else answer(500, { error: { code: 'POS499', message: String(error) } });
        }
      },
      (error: unknown) => bad(String((error as Error).message)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
