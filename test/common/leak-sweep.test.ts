import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { keyId, signEnvelope } from '../../cloud-sync/envelope.js';
import { findPanShapedRuns } from '../../common/luhn-scan.js';
import { cutOpaqueHex, sqliteValuesToSweep, sweepForPans } from '../helpers/leak-sweep.js';

describe('leak sweep', () => {
  it('finds a test PAN in binary content and a Luhn-valid run in text', () => {
    const db = Buffer.concat([
      Buffer.from([0, 1, 2]),
      Buffer.from('x5555555555554444y'),
      Buffer.from([255]),
    ]);
    const leaks = sweepForPans([
      { source: 'db', content: db },
      { source: 'log', content: '{"msg":"pan 6011000990139424"}' },
      {
        source: 'clean',
        content: '{"last4":"4444","first6":"555555","uuid":"0190f0a2-1234-7abc-8def-123456789012"}',
      },
    ]);
    expect(leaks.map((l) => l.source)).toEqual(['db', 'db', 'log']);
    expect(leaks.every((l) => !/\d{13}/.test(l.found))).toBe(true);
  });
});

describe('secret sweep', () => {
  it('finds a key as raw bytes, base64, base64url or hex, a text token, and any PEM private key', async () => {
    const { sweepForSecrets } = await import('../helpers/leak-sweep.js');
    const key = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);
    const b = Buffer.from(key);
    const found = sweepForSecrets(
      [
        { source: 'raw', content: Buffer.concat([Buffer.from('x'), b]) },
        { source: 'b64', content: `{"k":"${b.toString('base64')}"}` },
        { source: 'b64url', content: b.toString('base64url') },
        { source: 'hex', content: `key=${b.toString('hex')}` },
        { source: 'token', content: 'Bearer abcdefghijklmnopqrstuvwxyz012345' },
        { source: 'pem', content: '-----BEGIN PRIVATE KEY-----\nMC4CAQ' },
        { source: 'clean', content: 'nothing to see here' },
      ],
      [
        { name: 'key', value: key },
        { name: 'api token', value: 'abcdefghijklmnopqrstuvwxyz012345' },
      ],
    );
    expect(found.map((f) => f.split(':')[0])).toEqual([
      'raw',
      'b64',
      'b64url',
      'hex',
      'token',
      'pem',
    ]);
    expect(found.join('\n')).not.toContain(b.toString('hex'));
  });
});

describe('SQLite sweep', () => {
  it('scans values one by one, and the raw file bytes for the exact test PANs', async () => {
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { default: Database } = await import('better-sqlite3');
    const { sqliteValuesToSweep } = await import('../helpers/leak-sweep.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-sweep-'));
    try {
      const file = path.join(dir, 'x.db');
      const db = new Database(file);
      db.exec('CREATE TABLE t (a TEXT, b TEXT)');
      // Two values whose digits meet in the record: '…0000000' + '3012…' is no value of its own.
      db.prepare('INSERT INTO t VALUES (?, ?)').run('id-00000000', '3012-01-01');
      db.prepare('INSERT INTO t VALUES (?, ?)').run('note', 'card 6011000990139424');
      db.close();
      const values = sqliteValuesToSweep(file);
      expect(values.map((v) => v.source.split(' ')[1])).toEqual([
        't.a[0]',
        't.a[1]',
        't.b[0]',
        't.b[1]',
      ]);
      expect(sweepForPans(values).map((l) => l.source.split(' ')[1])).toEqual(['t.b[1]']);
      // The raw file: no Luhn scan (column adjacency), but a test PAN is still found.
      const raw = readFileSync(file);
      expect(sweepForPans([{ source: 'x.db', content: raw }])).toEqual([]);
      const withTestPan = Buffer.concat([raw, Buffer.from('4111111111111111')]);
      expect(sweepForPans([{ source: 'x.db', content: withTestPan }])).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metrics sweep (GET /metrics)', () => {
  // The CI failure of stop 28: a histogram sum whose 19 fraction digits pass Luhn.
  const chanceSum =
    'pos_agent_payment_stage_seconds_sum{stage="store",path="offline"} 0.0003530443678222592';

  it('does not read the fraction of a sample value as a PAN', async () => {
    const { metricsTextToSweep } = await import('../helpers/leak-sweep.js');
    expect(sweepForPans([{ source: '/metrics', content: chanceSum }])).toHaveLength(1);
    expect(sweepForPans(metricsTextToSweep('/metrics', chanceSum))).toEqual([]);
  });

  it('still finds a PAN in a label, a comment, an integer value or a value that is not a number', async () => {
    const { metricsTextToSweep } = await import('../helpers/leak-sweep.js');
    const text = [
      '# HELP pos_agent_x card 6011 0009 9013 9424',
      'pos_agent_x{reference="ref 5555555555554444"} 1',
      'pos_agent_y 4111111111111111',
      'pos_agent_z{a="b"} 4111111111111111.25',
      'pos_agent_w pan:6011000990139424',
      chanceSum,
    ].join('\n');
    const leaks = sweepForPans(metricsTextToSweep('/metrics', text));
    // A PAN of test-pans.ts is reported twice (exact and Luhn), any other once (Luhn).
    expect(leaks.map((l) => l.source)).toEqual([
      '/metrics line 1',
      '/metrics line 2 series',
      '/metrics line 2 series',
      '/metrics line 3 value',
      '/metrics line 3 value',
      '/metrics line 4 value',
      '/metrics line 4 value',
      '/metrics line 5 value',
    ]);
  });
});

describe('opaque hex fields (key id, KSN, PIN block, SRED ciphertext)', () => {
  // A real Ed25519 key whose key id (SHA-256 of the public key, 16 hex digits) happens to be 16
  // decimal digits that pass Luhn, as the cloud core's random key did in one CI run (about 1 key
  // in 2 000).
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, 7057);
  const chanceKey = nacl.sign.keyPair.fromSeed(seed);

  it('does not read a signed envelope’s key id as a PAN, and still finds one in its body', () => {
    expect(keyId(chanceKey.publicKey)).toBe('6429750159360155');
    const envelope = signEnvelope(
      { batch: 'b1', results: [{ key: 'k1', status: 'accepted' }] },
      { secretKey: chanceKey.secretKey },
    );
    // The raw scan finds the key id: this is the chance the sweep must tell apart.
    expect(findPanShapedRuns(envelope.toString('latin1'), { asciiRunsOnly: true })).toEqual([
      '6429750159360155',
    ]);
    expect(sweepForPans([{ source: 'mqtt down/acks', content: envelope }])).toEqual([]);

    const leaky = signEnvelope(
      { batch: 'b1', note: 'card 6011000990139424' },
      { secretKey: chanceKey.secretKey },
    );
    expect(sweepForPans([{ source: 'mqtt down/acks', content: leaky }])).toEqual([
      { source: 'mqtt down/acks', found: 'Luhn-valid run 601100…9424 (16 digits)' },
    ]);
  });

  it('cuts out KSN, PIN block and SRED ciphertext inside an envelope body, in their schema’s shape only', () => {
    const body = JSON.stringify({
      pinBlock: { format: 0, ksnHex: 'FFFF9876543210E00001', pinBlockHex: '6429750159360155' },
      sred: { ksnHex: 'FFFF9876543210E00002', ciphertextHex: 'AB6429750159360155CD' },
    });
    const text = JSON.stringify({ v: 1, kid: 'abcdef0123456789', body, sig: 'x' });
    const parts = cutOpaqueHex('up/auth', text);
    expect(parts.filter((p) => p.luhnScan === false).map((p) => p.content)).toEqual([
      'abcdef0123456789',
      'FFFF9876543210E00001',
      '6429750159360155',
      'FFFF9876543210E00002',
      'AB6429750159360155CD',
    ]);
    expect(sweepForPans([{ source: 'up/auth', content: text }])).toEqual([]);

    // Out of its schema's shape (17 digits) or in another field: scanned.
    const odd = [
      '{"pinBlockHex":"12345678901234569"}',
      '{"kid":"64297501593601557"}',
      '{"note":"6429750159360155"}',
    ];
    expect(cutOpaqueHex('x', odd[0] as string)).toHaveLength(1);
    expect(sweepForPans(odd.map((content, i) => ({ source: `odd ${i}`, content })))).toEqual([
      { source: 'odd 0', found: 'Luhn-valid run 123456…4569 (17 digits)' },
      { source: 'odd 1', found: 'Luhn-valid run 642975…1557 (17 digits)' },
      { source: 'odd 2', found: 'Luhn-valid run 642975…0155 (16 digits)' },
    ]);
  });

  it('still finds a test PAN put in an opaque field', () => {
    for (const content of [
      '{"kid":"4111111111111111"}',
      Buffer.from('{"v":1,"body":"{\\"sred\\":{\\"ciphertextHex\\":\\"005555555555554444\\"}}"}'),
    ]) {
      expect(sweepForPans([{ source: 's', content }]).map((l) => l.found)).toEqual([
        expect.stringMatching(/^test PAN /),
      ]);
    }
  });

  it('does not Luhn-scan the SRED KSN and ciphertext columns of the store, but any other column', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { default: Database } = await import('better-sqlite3');
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-sweep-'));
    try {
      const file = path.join(dir, 'x.db');
      const db = new Database(file);
      db.exec('CREATE TABLE sealed (sred_ksn TEXT, sred_ciphertext TEXT, note TEXT)');
      db.prepare('INSERT INTO sealed VALUES (?, ?, ?)').run(
        'FFFF9876543210E00001',
        '6429750159360155',
        '6429750159360155',
      );
      db.close();
      expect(sweepForPans(sqliteValuesToSweep(file)).map((l) => l.source.split(' ')[1])).toEqual([
        'sealed.note[0]',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
