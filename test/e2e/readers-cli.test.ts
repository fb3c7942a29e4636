/**
 * The field-tech commands of issue 4 through their command modules (what `pos-agent decode` and
 * `pos-agent devices` run): exit codes, masked output, standard input.
 */
import { Buffer } from 'node:buffer';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runDecode } from '../../agent/commands/decode.js';
import { runDevices } from '../../agent/commands/devices.js';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { TEST_PANS } from '../../simulator/test-cards.js';
import { visaHidMsrReport, visaSerialLine } from '../fixtures/reader-traces.js';

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function decode(kind: string, hex: string[], stdin = '') {
  const out = sink();
  const err = sink();
  const code = await runDecode({
    kind,
    hex,
    stdin: Readable.from([Buffer.from(stdin)]),
    out: out.stream,
    err: err.stream,
  });
  return { code, out: out.text(), err: err.text() };
}

describe('pos-agent decode', () => {
  it('decodes a hid-msr report piped on stdin, PAN masked, exit 0', async () => {
    const hex = Buffer.from(visaHidMsrReport()).toString('hex').replace(/(..)/g, '$1 ');
    const r = await decode('hid-msr', [], hex);
    expect(r.code).toBe(0);
    expect(r.out).toContain('track 1: PAN 411111******1111');
    for (const pan of TEST_PANS) expect(r.out + r.err).not.toContain(pan);
    expect(findPanShapedRuns(r.out + r.err)).toEqual([]);
  });

  it('exit 1 with a coded error for a track that does not parse; exit 2 for an unknown kind', async () => {
    const bad = Buffer.from(visaSerialLine()).toString('hex').replace('3d', '41'); // '=' → 'A'
    const r = await decode('track', [bad]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/POS132: track 2: .* \(bad_read\)/);
    expect(r.err).toContain('error(s): POS132');
    expect((await decode('usb', ['00'])).code).toBe(2);
    const notHex = await decode('tlv', ['9F2', '6']);
    expect(notHex.code).toBe(1);
    expect(notHex.err).toContain('POS142');
  });
});

describe('pos-agent devices', () => {
  it('lists what it finds and says how it listed serial ports', async () => {
    const out = sink();
    const code = await runDevices({
      json: false,
      out: out.stream,
      listOptions: {
        devDir: '/nonexistent-dev',
        list: () => Promise.reject(new Error('spawn udevadm ENOENT')),
      },
    });
    expect(code).toBe(0);
    expect(out.text()).toContain(
      'udev is not available: spawn udevadm ENOENT; scanned /dev/serial/by-id and /dev/tty* instead',
    );
    expect(out.text()).toMatch(/USB HID devices:/);
  });
});
