/**
 * `pos-agent decode --kind link|hid-msr|wedge|track|tlv [hex…|-]`: a field tech pastes or pipes a
 * captured hex trace and sees the decoded frames and fields, PANs masked to first 6 / last 4
 * (architecture.md §1 field techs; the decoding itself is in drivers/decode/, which alone touches card data).
 *
 * Input: the hex arguments joined, or standard input when there are none (or the only one is
 * `-`). Standard input is read as bytes and handed to the drivers as a Buffer, never as a string.
 * Exit status: 0 when everything decoded, 1 when any coded error was found, 2 for bad usage.
 */
import { Buffer } from 'node:buffer';
import type { Readable, Writable } from 'node:stream';
import {
  decodeTrace,
  parseHexTrace,
  TRACE_KINDS,
  type TraceKind,
} from '../../drivers/decode/decode-trace.js';
import { driverError } from '../../drivers/errors.js';

/** Upper bound of a trace read from standard input, in bytes of hex text (1 MiB). */
export const MAX_TRACE_TEXT_BYTES = 1 << 20;

/** True when `kind` is one of the kinds `decode` understands. */
export function isTraceKind(kind: string): kind is TraceKind {
  return (TRACE_KINDS as readonly string[]).includes(kind);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), 'latin1');
    total += b.length;
    if (total > MAX_TRACE_TEXT_BYTES) {
      for (const c of chunks) c.fill(0);
      b.fill(0);
      throw driverError(
        'POS142',
        `the trace on standard input is longer than ${MAX_TRACE_TEXT_BYTES} bytes of hex: cut it into single captures`,
      );
    }
    chunks.push(b);
  }
  const all = Buffer.concat(chunks);
  for (const c of chunks) c.fill(0);
  return all;
}

/**
 * Runs the decode command.
 * @param options.kind — one of link, hid-msr, wedge, track, tlv.
 * @param options.hex — hex words from the command line; empty or `['-']` reads `stdin`.
 * @returns the exit status: 0 decoded cleanly, 1 errors found, 2 bad usage.
 */
export async function runDecode(options: {
  kind: string;
  hex: string[];
  stdin: Readable;
  out: Writable;
  err: Writable;
}): Promise<number> {
  const { kind, out, err } = options;
  if (!isTraceKind(kind)) {
    err.write(`error POS142: unknown trace kind "${kind}": use one of ${TRACE_KINDS.join(', ')}\n`);
    return 2;
  }
  const fromStdin =
    options.hex.length === 0 || (options.hex.length === 1 && options.hex[0] === '-');
  let text: Buffer | string;
  if (fromStdin) {
    if ('isTTY' in options.stdin && options.stdin.isTTY === true)
      err.write('reading the hex trace from standard input; end with Ctrl-D\n');
    text = await readAll(options.stdin);
  } else text = options.hex.join(' ');
  const parsed = parseHexTrace(text);
  if (typeof text !== 'string') text.fill(0);
  if (!parsed.ok) {
    err.write(`error ${parsed.error.code}: ${parsed.error.reason}\n`);
    return 1;
  }
  const length = parsed.bytes.length;
  const result = decodeTrace(kind, parsed.bytes);
  out.write(`${kind} trace, ${length} bytes (PANs masked: first 6 / last 4)\n`);
  for (const line of result.lines) out.write(`${line}\n`);
  if (result.errors.length > 0) {
    err.write(
      `${result.errors.length} error(s): ${[...new Set(result.errors.map((e) => e.code))].join(', ')}\n`,
    );
    return 1;
  }
  out.write('ok: no errors\n');
  return 0;
}
