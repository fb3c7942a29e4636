/**
 * Reads a live process's memory through `/proc/PID/maps` + `/proc/PID/mem` (proc(5)) and counts
 * the copies of card numbers in every form the agent could hold them (issue 11 item 1):
 *
 * ```
 *  ascii      "4111111111111111"            a JS one-byte string, a Buffer of text
 *  utf16      "4\0 1\0 1\0 1\0 …"           a JS two-byte string
 *  bcd        41 11 11 11 11 11 11 11       EMV `cn` / tag 5A, sealed plaintext (PAN from the
 *  bcd-odd    x4 11 11 … (shifted a nibble)  high nibble, and one nibble later: tag 57 after 'D')
 *  track      "4111…1111=" / "B4111…1111^"  ISO/IEC 7813 track 2 / track 1 text (also in ascii)
 * ```
 *
 * Needs ptrace access to the target: root, or the same user with `kernel.yama.ptrace_scope` 0.
 * The target is stopped (SIGSTOP) while it is read, so the picture is consistent.
 */
import { Buffer } from 'node:buffer';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/** Copies found per form; `total` counts ascii + utf16 + bcd + bcd-odd (track is inside ascii). */
export interface PanCopies {
  ascii: number;
  utf16: number;
  bcd: number;
  bcdOdd: number;
  track: number;
  total: number;
}

/** BCD of `digits` from the first digit (`high`) or from the second (`odd`), whole bytes only. */
function bcd(digits: string): Buffer {
  const out = Buffer.alloc(Math.floor(digits.length / 2));
  for (let i = 0; i < out.length; i++)
    out[i] = (Number(digits[2 * i]) << 4) | Number(digits[2 * i + 1]);
  return out;
}

/** One form of a PAN to look for; `check` confirms the nibbles around a whole-byte match. */
interface Needle {
  form: keyof Omit<PanCopies, 'total'>;
  bytes: Buffer;
  check?: (haystack: Buffer, at: number) => boolean;
}

/**
 * The needles of one PAN, named by form. BCD needles hold the whole bytes; the nibbles that
 * share a byte with something else (the first digit of the shifted form, the last digit of an
 * odd count) are checked around each match, so `11 11 11 …` alone is not a Visa test card.
 */
export function panNeedles(pan: string): Needle[] {
  const digit = (i: number): number => Number(pan[i]);
  const evenTail = (from: number, bytes: number) => (h: Buffer, at: number) =>
    (pan.length - from) % 2 === 0 || (h[at + bytes] ?? 0) >> 4 === digit(pan.length - 1);
  const high = bcd(pan);
  const odd = bcd(pan.slice(1));
  return [
    { form: 'ascii', bytes: Buffer.from(pan, 'latin1') },
    { form: 'utf16', bytes: Buffer.from(pan, 'utf16le') },
    { form: 'bcd', bytes: high, check: evenTail(0, high.length) },
    {
      form: 'bcdOdd',
      bytes: odd,
      check: (h, at) =>
        at > 0 && ((h[at - 1] ?? 0) & 0x0f) === digit(0) && evenTail(1, odd.length)(h, at),
    },
    { form: 'track', bytes: Buffer.from(`${pan}=`, 'latin1') },
    { form: 'track', bytes: Buffer.from(`B${pan}^`, 'latin1') },
  ];
}

/** True when this process can read another's memory (`/proc/PID/mem` needs ptrace rights). */
export function canReadProcessMemory(): boolean {
  return process.platform === 'linux' && process.getuid?.() === 0;
}

interface Region {
  start: number;
  end: number;
  name: string;
}

function readableRegions(pid: number): Region[] {
  const regions: Region[] = [];
  for (const line of readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m === null || m[3]?.[0] !== 'r') continue;
    const name = m[4] ?? '';
    if (name === '[vvar]' || name === '[vsyscall]' || name === '[vvar_vclock]') continue;
    regions.push({ start: parseInt(m[1] ?? '0', 16), end: parseInt(m[2] ?? '0', 16), name });
  }
  return regions;
}

function count(
  haystack: Buffer,
  needle: Needle,
  limit: number,
  onMatch?: (at: number) => void,
): number {
  let n = 0;
  for (
    let at = haystack.indexOf(needle.bytes);
    at >= 0 && at < limit;
    at = haystack.indexOf(needle.bytes, at + 1)
  ) {
    if (needle.check !== undefined && !needle.check(haystack, at)) continue;
    n++;
    onMatch?.(at);
  }
  return n;
}

/**
 * Counts the copies of every PAN in `pans` in the memory of process `pid`, and the mapped bytes
 * read. The process is stopped while it is read unless it is this process.
 * @throws Error when /proc/PID/mem cannot be opened (no ptrace rights, process gone).
 */
export function scanProcessMemory(
  pid: number,
  pans: readonly string[],
  options: { contextBytes?: number } = {},
): {
  copies: Record<string, PanCopies>;
  bytesRead: number;
  regions: number;
  /** With `contextBytes`: each match's mapping and the bytes around it (diagnosis only). */
  contexts: string[];
} {
  const contexts: string[] = [];
  const self = pid === process.pid;
  const needles = pans.map((pan) => ({ pan, list: panNeedles(pan) }));
  const copies: Record<string, PanCopies> = {};
  for (const pan of pans)
    copies[pan] = { ascii: 0, utf16: 0, bcd: 0, bcdOdd: 0, track: 0, total: 0 };
  const longest = Math.max(...needles.flatMap((n) => n.list.map((x) => x.bytes.length)));
  const chunkSize = 8 << 20;
  const chunk = Buffer.alloc(chunkSize + longest);
  let bytesRead = 0;
  let regionCount = 0;
  if (!self) process.kill(pid, 'SIGSTOP');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const region of readableRegions(pid)) {
      regionCount++;
      for (let at = region.start; at < region.end; at += chunkSize) {
        const length = Math.min(chunkSize + longest - 1, region.end - at);
        let got: number;
        try {
          got = readSync(fd, chunk, 0, length, at);
        } catch {
          break; // an unreadable mapping (guard pages, device memory)
        }
        bytesRead += Math.min(got, chunkSize);
        const view = chunk.subarray(0, got);
        // A match that starts in the overlap is counted by the next chunk.
        const limit = Math.min(got, chunkSize);
        for (const { pan, list } of needles) {
          const c = copies[pan] as PanCopies;
          for (const needle of list) {
            const around = options.contextBytes;
            c[needle.form] += count(
              view,
              needle,
              limit,
              around === undefined
                ? undefined
                : (m) => {
                    const bytes = view.subarray(
                      Math.max(0, m - around),
                      m + needle.bytes.length + around,
                    );
                    contexts.push(
                      `${needle.form} in ${region.name || '[anon]'} @${(at + m).toString(16)}: ` +
                        `${bytes.toString('hex')} ${JSON.stringify(bytes.toString('latin1'))}`,
                    );
                  },
            );
          }
        }
      }
    }
  } finally {
    closeSync(fd);
    if (!self) process.kill(pid, 'SIGCONT');
  }
  // The needles and the chunk live in this process: when it scans itself, they are found too.
  for (const c of Object.values(copies)) c.total = c.ascii + c.utf16 + c.bcd + c.bcdOdd;
  chunk.fill(0);
  return { copies, bytesRead, regions: regionCount, contexts };
}
