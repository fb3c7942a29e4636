import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isAgentError } from '../../common/agent-error.js';
import { keyId, openEnvelope, signEnvelope } from '../../cloud-sync/envelope.js';
import { AcksSchema, RecordsBatchSchema } from '../../cloud-sync/schemas.js';
import { makeRecord } from './fixtures.js';

const device = nacl.sign.keyPair();
const other = nacl.sign.keyPair();
const keys = new Map([[keyId(device.publicKey), device.publicKey]]);
const batch = { batch: 'b1', records: [makeRecord(1), makeRecord(2)] };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isAgentError(error) ? error.code : `not an AgentError: ${String(error)}`;
  }
  return undefined;
}

describe('signed envelopes', () => {
  it('key id is the first 16 hex digits of SHA-256 of the public key', () => {
    expect(keyId(device.publicKey)).toMatch(/^[0-9a-f]{16}$/);
    expect(keyId(device.publicKey)).not.toBe(keyId(other.publicKey));
    expect(codeOf(() => keyId(device.secretKey))).toBe('POS315');
  });

  it('signs and opens', () => {
    const bytes = signEnvelope(batch, { secretKey: device.secretKey }, RecordsBatchSchema);
    const outer = JSON.parse(bytes.toString()) as {
      v: number;
      kid: string;
      body: string;
      sig: string;
    };
    expect(outer.v).toBe(1);
    expect(outer.kid).toBe(keyId(device.publicKey));
    expect(typeof outer.body).toBe('string');
    expect(Buffer.from(outer.sig, 'base64')).toHaveLength(64);
    expect(openEnvelope(bytes, { keys }, RecordsBatchSchema)).toEqual(batch);
    expect(
      openEnvelope(bytes.toString(), { keys: (kid) => keys.get(kid) }, RecordsBatchSchema),
    ).toEqual(batch);
  });

  it('refuses a tampered body (POS311)', () => {
    const outer = JSON.parse(signEnvelope(batch, { secretKey: device.secretKey }).toString()) as {
      body: string;
    };
    outer.body = outer.body.replace('"amountMinor":1100', '"amountMinor":1');
    expect(outer.body).toContain('"amountMinor":1,');
    expect(codeOf(() => openEnvelope(JSON.stringify(outer), { keys }, RecordsBatchSchema))).toBe(
      'POS311',
    );
  });

  it('refuses a signature by another key under the pinned key id (POS311)', () => {
    const forged = signEnvelope(batch, {
      kid: keyId(device.publicKey),
      secretKey: other.secretKey,
    });
    expect(codeOf(() => openEnvelope(forged, { keys }, RecordsBatchSchema))).toBe('POS311');
  });

  it('refuses an unknown key id (POS312)', () => {
    const bytes = signEnvelope(batch, { secretKey: other.secretKey });
    expect(codeOf(() => openEnvelope(bytes, { keys }, RecordsBatchSchema))).toBe('POS312');
  });

  it('refuses bad JSON and bad envelope shapes (POS310)', () => {
    expect(codeOf(() => openEnvelope('not json', { keys }, RecordsBatchSchema))).toBe('POS310');
    expect(codeOf(() => openEnvelope('{"v":2}', { keys }, RecordsBatchSchema))).toBe('POS310');
    // A signed body that is not JSON text.
    const body = 'not json {';
    const sig = Buffer.from(nacl.sign.detached(Buffer.from(body), device.secretKey)).toString(
      'base64',
    );
    const envelope = JSON.stringify({ v: 1, kid: keyId(device.publicKey), body, sig });
    expect(codeOf(() => openEnvelope(envelope, { keys }, RecordsBatchSchema))).toBe('POS310');
  });

  it('lists the zod issues of a body that fails the schema (POS313)', () => {
    const bytes = signEnvelope(
      { batch: 'b', results: [{ key: 'k', status: 'ok' }] },
      { secretKey: device.secretKey },
    );
    let error: unknown;
    try {
      openEnvelope(bytes, { keys }, AcksSchema);
    } catch (e) {
      error = e;
    }
    expect(isAgentError(error, 'POS313')).toBe(true);
    const agentError = error as { message: string; details: { issues: { path: string[] }[] } };
    expect(agentError.message).toContain('results.0.status');
    expect(agentError.details.issues[0]?.path).toEqual(['results', '0', 'status']);
  });

  it('signEnvelope refuses what the schema refuses, without the values in the message', () => {
    const leaky = { ...batch, records: [{ ...makeRecord(1), pan: '4111111111111111' }] };
    let message = '';
    try {
      signEnvelope(leaky, { secretKey: device.secretKey }, RecordsBatchSchema);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/POS313/);
    expect(message).not.toContain('4111111111111111');
  });

  it('refuses a payload over maxBytes before parsing (POS314)', () => {
    const bytes = signEnvelope(batch, { secretKey: device.secretKey });
    expect(
      codeOf(() => openEnvelope(bytes, { keys, maxBytes: bytes.length - 1 }, RecordsBatchSchema)),
    ).toBe('POS314');
  });

  it('round-trips any JSON value, and any single-byte change breaks it', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (value, at) => {
        const bytes = signEnvelope(value, { secretKey: device.secretKey });
        const opened = openEnvelope(bytes, { keys }, z.unknown());
        expect(opened).toEqual(JSON.parse(JSON.stringify(value)));
        const outer = JSON.parse(bytes.toString()) as { body: string };
        const i = at % outer.body.length;
        const flipped =
          outer.body.slice(0, i) + (outer.body[i] === 'a' ? 'b' : 'a') + outer.body.slice(i + 1);
        outer.body = flipped;
        expect(codeOf(() => openEnvelope(JSON.stringify(outer), { keys }, z.unknown()))).toBe(
          'POS311',
        );
      }),
      { numRuns: 40 },
    );
  });
});

describe('Ed25519 compatibility with tweetnacl (architecture.md §5 names nacl.sign.detached)', () => {
  it('signatures are the same bytes as nacl.sign.detached and verify both ways', () => {
    const body = JSON.stringify(batch);
    const outer = JSON.parse(signEnvelope(batch, { secretKey: device.secretKey }).toString()) as {
      body: string;
      sig: string;
    };
    expect(outer.body).toBe(body);
    const naclSig = nacl.sign.detached(Buffer.from(body), device.secretKey);
    expect(Buffer.from(outer.sig, 'base64')).toEqual(Buffer.from(naclSig));
    expect(
      nacl.sign.detached.verify(
        Buffer.from(body),
        Buffer.from(outer.sig, 'base64'),
        device.publicKey,
      ),
    ).toBe(true);
  });
});
