/**
 * Fuzzing every parser that reads bytes from a device, the network or a tech (issue 11 item 6),
 * with fast-check. Each target gets random input with the test PANs planted in it (as ASCII, as
 * BCD, inside tracks, TLVs, frames and envelopes) and must:
 *
 * - never throw anything but a coded AgentError where throwing is its contract (and nothing at
 *   all where it says "never throws");
 * - never put card data in an error message, a decoded line or an error detail: no test PAN, no
 *   PAN-shaped run (the normalizing scan of common/luhn-scan.ts).
 *
 * Runs: `npm run fuzz` → 100,000 cases per parser (FUZZ_RUNS=… for another count); in
 * `npm test` → 200 per parser. A failure prints fast-check's seed and the shrunk input.
 */
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { openEnvelope, signBody } from '../../cloud-sync/envelope.js';
import { checkDownlinkSize } from '../../cloud-sync/commands.js';
import { AcksSchema, CommandSchema } from '../../cloud-sync/schemas.js';
import { keyId } from '../../cloud-sync/envelope.js';
import { isAgentError } from '../../common/agent-error.js';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { CardBoundary } from '../../drivers/boundary/card-boundary.js';
import { parseEmvTlv } from '../../drivers/boundary/emv-tags.js';
import { parseTrack1, parseTrack2 } from '../../drivers/boundary/track-parser.js';
import { decodeTrace, parseHexTrace, TRACE_KINDS } from '../../drivers/decode/decode-trace.js';
import { encodeFrame, FrameDecoder } from '../../drivers/link/framing.js';
import { decodeMessage } from '../../drivers/pinpad/messages.js';
import { parseHidMsrReport } from '../../drivers/readers/hid-msr-report.js';
import { WedgeDecoder } from '../../drivers/readers/keyboard-wedge.js';
import { parseSredHidReport } from '../../drivers/readers/sred-hid-report.js';
import { splitSwipeText } from '../../drivers/readers/swipe-text.js';
import { checkNewPayment } from '../../store-forward/validate.js';
import { TEST_PANS } from '../helpers/test-pans.js';

const RUNS = Number(
  process.env.FUZZ_RUNS ?? (process.env.npm_lifecycle_event === 'fuzz' ? 100_000 : 200),
);
const FS = 0x1c;

/** A test PAN in one of the forms card data takes on the wire. */
const plantedPan = fc
  .constantFrom(...TEST_PANS)
  .chain((pan) =>
    fc.constantFrom(
      Buffer.from(pan, 'latin1'),
      Buffer.from(`;${pan}=30121010000000000?`, 'latin1'),
      Buffer.from(`%B${pan}^DOE/JANE^3012101000000000?`, 'latin1'),
      Buffer.from(pan.length % 2 === 0 ? pan : `${pan}F`, 'hex'),
      Buffer.from([0x5a, 8, ...Buffer.from(pan.padEnd(16, 'F').slice(0, 16), 'hex')]),
      Buffer.from([0x9f, 0x26, 8, ...Buffer.from(pan.padEnd(16, 'F').slice(0, 16), 'hex')]),
    ),
  );

/** Random bytes with PANs and protocol bytes (STX, ETX, FS, sentinels, TLV lengths) planted. */
const hostile = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)) },
      { weight: 2, arbitrary: plantedPan },
      {
        weight: 2,
        arbitrary: fc
          .constantFrom(
            0x02,
            0x03,
            0x06,
            0x15,
            0x04,
            FS,
            0x25,
            0x3b,
            0x3f,
            0x3d,
            0x5e,
            0x81,
            0x82,
            0xff,
            0x00,
          )
          .map((b) => Buffer.of(b)),
      },
    ),
    { maxLength: 12 },
  )
  .map((parts) => Buffer.concat(parts));

/** Text the agent shows or throws must hold no card number. */
function expectNoPan(where: string, text: string): void {
  for (const pan of TEST_PANS) if (text.includes(pan)) throw new Error(`${where} holds a test PAN`);
  const runs = findPanShapedRuns(text);
  if (runs.length > 0) throw new Error(`${where} holds a ${runs[0]?.length}-digit PAN-shaped run`);
}

/** Runs `fn`; an AgentError is checked for card data, anything else thrown fails. */
function coded(where: string, fn: () => unknown, mayThrow: boolean): unknown {
  try {
    return fn();
  } catch (error) {
    if (!mayThrow || !isAgentError(error)) throw error;
    expectNoPan(`${where} error`, `${error.message} ${JSON.stringify(error.details ?? {})}`);
    return undefined;
  }
}

function checkResult(where: string, result: unknown): void {
  if (typeof result !== 'object' || result === null) return;
  const r = result as { ok?: boolean; error?: unknown; errors?: unknown[]; lines?: string[] };
  for (const e of [r.error, ...(r.errors ?? [])])
    if (isAgentError(e))
      expectNoPan(`${where} error`, `${e.message} ${JSON.stringify(e.details ?? {})}`);
  for (const line of r.lines ?? []) expectNoPan(`${where} output`, line);
}

/**
 * Runs `prop` for {@link RUNS} cases in chunks of 5,000, each with its own random seed, yielding
 * to the event loop between chunks: a worker busy for minutes without a break loses its RPC link
 * to vitest ("Timeout calling onTaskUpdate").
 */
async function run<T extends unknown[]>(prop: fc.IProperty<T>): Promise<void> {
  for (let done = 0; done < RUNS; done += 5000) {
    fc.assert(prop, { numRuns: Math.min(5000, RUNS - done) });
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const cloudKeys = nacl.sign.keyPair();
const keys = new Map([[keyId(cloudKeys.publicKey), cloudKeys.publicKey]]);
const boundary = new CardBoundary({
  tokenKey: new Uint8Array(32).fill(5),
  vaultPublicKey: nacl.box.keyPair().publicKey,
  allowCardholderName: true,
});

/**
 * Per test: 5 ms a case, ~17× the slowest target's pace (envelope: 29 s for 100,000 cases), and at
 * least 30 s. Not 0 (none): once, right after a chaos run, `npm run fuzz` sat idle for minutes
 * with no test reported (not seen again in four runs); a bound turns such a stall into a failure
 * that names the test.
 */
const TEST_TIMEOUT_MS = Math.max(30_000, RUNS * 5);

describe(`fuzz: ${RUNS} cases per parser`, { timeout: TEST_TIMEOUT_MS }, () => {
  it('control: the card-data check fails on a PAN, spelled plainly or not', () => {
    expect(() => expectNoPan('x', 'reference 4111111111111111')).toThrow(/test PAN/);
    expect(() => expectNoPan('x', 'ref 5555-5555-5555-4444')).toThrow(/PAN-shaped/);
    expect(() => expectNoPan('x', 'POS121: field (16 characters, not shown)')).not.toThrow();
  });

  it('framing: FrameDecoder.push, also over encoded frames of hostile payloads', async () => {
    await run(
      fc.property(hostile, (bytes) => {
        const decoder = new FrameDecoder();
        const outputs = coded('framing', () => decoder.push(bytes, 0), false) as {
          kind: string;
          payload?: Buffer;
        }[];
        for (const o of outputs)
          if (o.payload !== undefined)
            coded('messages', () => decodeMessage(o.payload as Buffer), true);
        const printable = Buffer.from(bytes.map((b) => (b === FS ? FS : 0x20 + (b % 0x5f))));
        if (printable.length > 0) {
          // Control: the same decoder, reset, still decodes a valid frame of those bytes.
          decoder.reset();
          const again = decoder.push(encodeFrame(printable), 1);
          expect(again.some((o) => o.kind === 'frame')).toBe(true);
        }
      }),
    );
  });

  it('messages: decodeMessage of hostile payloads and of 21/22/29/31 with planted fields', async () => {
    await run(
      fc.property(hostile, (bytes) => {
        for (const id of ['21', '22', '29', '31', '01', '90', '']) {
          const payload = Buffer.concat([Buffer.from(id, 'latin1'), Buffer.of(FS), bytes]);
          checkResult(
            'messages',
            coded('messages', () => decodeMessage(payload), true),
          );
        }
      }),
    );
  });

  it('tracks: parseTrack1 / parseTrack2 / splitSwipeText never throw', async () => {
    await run(
      fc.property(hostile, (bytes) => {
        checkResult(
          'track1',
          coded('track1', () => parseTrack1(bytes), false),
        );
        checkResult(
          'track2',
          coded('track2', () => parseTrack2(bytes), false),
        );
        coded('swipe-text', () => splitSwipeText(bytes), false);
      }),
    );
  });

  it('TLV: parseEmvTlv never throws; its error names no card data', async () => {
    await run(
      fc.property(hostile, (bytes) =>
        checkResult(
          'tlv',
          coded('tlv', () => parseEmvTlv(bytes), false),
        ),
      ),
    );
  });

  it('HID reports: MSR (337 bytes) and SRED (692 bytes) with planted tracks', async () => {
    await run(
      fc.property(hostile, fc.boolean(), (bytes, sred) => {
        const size = sred ? 692 : 337;
        const report = Buffer.alloc(size);
        bytes.copy(report, 0, 0, Math.min(bytes.length, size));
        bytes.copy(report, 7, 0, Math.min(bytes.length, size - 7));
        checkResult(
          'hid',
          coded(
            'hid',
            () => (sred ? parseSredHidReport(report) : parseHidMsrReport(report)),
            false,
          ),
        );
        checkResult(
          'hid-any-size',
          coded('hid', () => parseHidMsrReport(bytes), false),
        );
      }),
    );
  });

  it('keyboard wedge: WedgeDecoder.push of 8-byte reports', async () => {
    await run(
      fc.property(hostile, (bytes) => {
        const decoder = new WedgeDecoder();
        for (let at = 0; at + 8 <= bytes.length; at += 8)
          coded('wedge', () => decoder.push(bytes.subarray(at, at + 8)), false);
      }),
    );
  });

  it('card boundary: tokenize of hostile tracks and EMV data; failures name no card data', async () => {
    await run(
      fc.property(hostile, fc.constantFrom('swipe', 'chip', 'contactless'), (bytes, entryMode) => {
        const result = coded(
          'boundary',
          () =>
            boundary.tokenize({
              entryMode: entryMode as 'swipe',
              track1: Buffer.from(bytes),
              track2: Buffer.from(bytes),
              emvTlv: Buffer.from(bytes),
            }),
          false,
        );
        checkResult('boundary', result);
        const r = result as { ok: boolean; card?: Record<string, unknown> };
        if (r.ok) expectNoPan('card token', JSON.stringify({ ...r.card, sealed: undefined }));
      }),
    );
  });

  it('decode: every trace kind, and parseHexTrace of hostile text; output is masked', async () => {
    await run(
      fc.property(hostile, (bytes) => {
        for (const kind of TRACE_KINDS)
          checkResult(
            `decode ${kind}`,
            coded('decode', () => decodeTrace(kind, Buffer.from(bytes)), false),
          );
        checkResult(
          'hex',
          coded('hex', () => parseHexTrace(bytes), false),
        );
      }),
    );
  });

  it('envelope: openEnvelope of hostile payloads, signed hostile bodies, oversized downlinks', async () => {
    await run(
      fc.property(hostile, (bytes) => {
        coded('envelope', () => openEnvelope(bytes, { keys, maxBytes: 4096 }, AcksSchema), true);
        const body = bytes.toString('latin1');
        const signed = signBody(
          JSON.stringify({
            id: body,
            deviceId: body,
            issuedAt: body,
            expiresAt: body,
            command: body,
          }),
          { secretKey: cloudKeys.secretKey },
        );
        coded('envelope', () => openEnvelope(signed, { keys }, CommandSchema), true);
        coded('downlink size', () => checkDownlinkSize(bytes, 64), true);
      }),
    );
  });

  it('store validation: checkNewPayment of hostile references and keys; POS213/214 name no digits', async () => {
    await run(
      fc.property(hostile, (bytes) => {
        const text = bytes.toString('latin1');
        coded(
          'validate',
          () =>
            checkNewPayment({
              idempotencyKey: text,
              amountMinor: 100,
              currency: 'EUR',
              reference: text,
              card: {
                token: `tok_${'a'.repeat(32)}`,
                brand: 'visa',
                first6: '411111',
                last4: '1111',
                expiryMonth: 12,
                expiryYear: 2030,
                entryMode: 'chip',
              },
            }),
          true,
        );
      }),
    );
  });
});
