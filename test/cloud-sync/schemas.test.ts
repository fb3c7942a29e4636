import { describe, expect, it } from 'vitest';
import { contractJsonSchema } from '../../cloud-sync/contract-json-schema.js';
import { isAgentError } from '../../common/agent-error.js';
import {
  AcksSchema,
  AuthRequestSchema,
  AuthResponseSchema,
  CommandSchema,
  OutboxRecordSchema,
  RecordsBatchSchema,
  StatusSchema,
  cloudTopicFilters,
  parseTopic,
  topics,
} from '../../cloud-sync/schemas.js';
import { makeRecord } from './fixtures.js';

describe('topics', () => {
  it('builds the architecture.md §5 topic names', () => {
    expect(topics('pos/v1', 'store-12.lane-3')).toEqual({
      records: 'pos/v1/store-12.lane-3/up/records',
      auth: 'pos/v1/store-12.lane-3/up/auth',
      status: 'pos/v1/store-12.lane-3/status',
      acks: 'pos/v1/store-12.lane-3/down/acks',
      authResponse: 'pos/v1/store-12.lane-3/down/auth',
      commands: 'pos/v1/store-12.lane-3/down/commands',
      commandResults: 'pos/v1/store-12.lane-3/up/command-results',
    });
    expect(topics(undefined, 'd1').records).toBe('pos/v1/d1/up/records');
    expect(cloudTopicFilters('acme/pos').records).toBe('acme/pos/+/up/records');
  });

  it('refuses device ids and prefixes that break topic levels (POS304)', () => {
    for (const bad of ['a/b', 'a+', '#', '', 'x'.repeat(129)]) {
      expect(() => topics('pos/v1', bad)).toThrow(/POS304/);
    }
    for (const bad of ['', '/pos', 'pos/', 'pos/#']) {
      expect(() => topics(bad, 'd1')).toThrow(/POS304/);
    }
  });

  it('parses topics back', () => {
    expect(parseTopic('pos/v1', 'pos/v1/d1/up/records')).toEqual({
      deviceId: 'd1',
      kind: 'records',
    });
    expect(parseTopic('pos/v1', 'pos/v1/d1/down/auth')).toEqual({
      deviceId: 'd1',
      kind: 'authResponse',
    });
    expect(parseTopic('pos/v1', 'pos/v2/d1/up/records')).toBeUndefined();
    expect(parseTopic('pos/v1', 'pos/v1/d1/up/other')).toBeUndefined();
  });
});

describe('wire schemas', () => {
  it('accepts a good record and batch', () => {
    expect(OutboxRecordSchema.safeParse(makeRecord(1)).success).toBe(true);
    const withPin = makeRecord(2, {
      pinBlock: { format: 0, ksnHex: 'FFFF9876543210E00001', pinBlockHex: '0123456789ABCDEF' },
      sred: { ksnHex: 'FFFF9876543210E00001', ciphertextHex: 'a1b2c3' },
    });
    expect(OutboxRecordSchema.safeParse(withPin).success).toBe(true);
    expect(
      RecordsBatchSchema.safeParse({ batch: 'b1', records: [makeRecord(1), makeRecord(2)] })
        .success,
    ).toBe(true);
  });

  it.each([
    ['a PAN smuggled as an extra key', { ...makeRecord(1), pan: '4111111111111111' }],
    [
      'a PAN inside card',
      { ...makeRecord(1), card: { ...makeRecord(1).card, pan: '4111111111111111' } },
    ],
    [
      'a float amount',
      { ...makeRecord(1), payment: { ...makeRecord(1).payment, amountMinor: 10.5 } },
    ],
    ['a zero amount', { ...makeRecord(1), payment: { ...makeRecord(1).payment, amountMinor: 0 } }],
    [
      'a lower-case currency',
      { ...makeRecord(1), payment: { ...makeRecord(1).payment, currency: 'eur' } },
    ],
    ['seq 0', { ...makeRecord(1), seq: 0 }],
    ['a bad token', { ...makeRecord(1), card: { ...makeRecord(1).card, token: 'tok_ABC' } }],
    ['first6 of 5 digits', { ...makeRecord(1), card: { ...makeRecord(1).card, first6: '41111' } }],
    ['a non-ISO time', { ...makeRecord(1), at: 'yesterday' }],
    ['a bad chain', { ...makeRecord(1), chain: 'xyz' }],
    ['an unknown type', { ...makeRecord(1), type: 'refund' }],
    ['sealed that is not base64', { ...makeRecord(1), sealed: '!!!' }],
    [
      'a PIN block of odd size',
      {
        ...makeRecord(1),
        pinBlock: { format: 0, ksnHex: 'FFFF9876543210E00001', pinBlockHex: '0123' },
      },
    ],
  ])('refuses a record with %s', (_name, record) => {
    expect(OutboxRecordSchema.safeParse(record).success).toBe(false);
  });

  it('refuses a batch out of seq order or empty', () => {
    expect(
      RecordsBatchSchema.safeParse({ batch: 'b', records: [makeRecord(2), makeRecord(1)] }).success,
    ).toBe(false);
    expect(RecordsBatchSchema.safeParse({ batch: 'b', records: [] }).success).toBe(false);
  });

  it('acks, auth, status and commands', () => {
    expect(
      AcksSchema.parse({
        batch: 'b1',
        results: [
          { key: 'k1', status: 'accepted', outcome: 'approved', authCode: 'A1B2C3' },
          { key: 'k2', status: 'duplicate', outcome: 'declined', declineCode: '05' },
          { key: 'k3', status: 'rejected', code: 'POS313', reason: 'bad' },
        ],
        futureField: 1,
      }),
    ).not.toHaveProperty('futureField'); // downlinks strip unknown keys
    expect(
      AcksSchema.safeParse({ batch: 'b1', results: [{ key: 'k', status: 'ok' }] }).success,
    ).toBe(false);
    const { key, payment, card, sealed } = makeRecord(1);
    expect(AuthRequestSchema.safeParse({ key, payment, card, sealed }).success).toBe(true);
    expect(AuthResponseSchema.safeParse({ key, outcome: 'maybe' }).success).toBe(false);
    expect(
      StatusSchema.safeParse({
        state: 'online',
        at: '2026-11-21T09:54:21.000Z',
        version: '0.1.0',
        queue: { depth: 0, oldestAt: null, dead: 0 },
      }).success,
    ).toBe(true);
    expect(
      StatusSchema.safeParse({ state: 'maybe', at: 'x', version: '', queue: {} }).success,
    ).toBe(false);
    const command = {
      id: 'c1',
      issuedAt: '2026-11-21T09:54:21.000Z',
      expiresAt: '2026-11-21T09:55:21.000Z',
      command: { type: 'set_log_level', level: 'debug' },
    };
    expect(CommandSchema.safeParse(command).success).toBe(true);
    expect(CommandSchema.safeParse({ ...command, command: { type: 'reboot' } }).success).toBe(
      false,
    ); // unknown command types are refused
    expect(CommandSchema.safeParse({ ...command, expiresAt: command.issuedAt }).success).toBe(
      false,
    );
  });
});

describe('contract JSON Schema', () => {
  it('generates a JSON Schema document with every message', () => {
    const doc = contractJsonSchema();
    const defs = doc.$defs as Record<string, Record<string, unknown>>;
    expect(Object.keys(defs).sort()).toEqual(
      [
        'AckResult',
        'Acks',
        'AuthRequest',
        'BatchRecord',
        'AuthResponse',
        'ClaimRequest',
        'ClaimResponse',
        'Command',
        'CommandResult',
        'Envelope',
        'OutboxRecord',
        'RecordsBatch',
        'Status',
      ].sort(),
    );
    const record = defs.OutboxRecord as { required: string[]; additionalProperties: unknown };
    expect(record.required).toEqual(
      expect.arrayContaining(['key', 'seq', 'type', 'at', 'payment', 'card', 'chain']),
    );
    expect(record.additionalProperties).toBe(false);
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  });

  it('codes are AgentErrors', () => {
    try {
      topics('pos/v1', 'a/b');
    } catch (error) {
      expect(isAgentError(error, 'POS304')).toBe(true);
    }
  });
});

describe('batch records (issue 17)', () => {
  const report = {
    key: 'bat_0190-1.close.1',
    seq: 7,
    type: 'batch',
    at: '2026-11-21T18:00:00.000Z',
    batch: {
      id: 'bat_0190-1',
      kind: 'close',
      terminal: 'store-1.lane-1',
      openedAt: '2026-11-21T06:00:00.000Z',
      closedAt: '2026-11-21T18:00:00.000Z',
      asOf: '2026-11-21T18:00:00.000Z',
      firstEventSeq: 1,
      lastEventSeq: 6,
      chainHead: 'A'.repeat(43),
      totals: {
        count: 1,
        byCurrency: { EUR: { count: 1, amountMinor: 1250 } },
        byBrand: { visa: { EUR: { count: 1, amountMinor: 1250 } } },
        byState: { approved_online: { EUR: { count: 1, amountMinor: 1250 } } },
      },
      payments: [
        { key: 'k-1', amountMinor: 1250, currency: 'EUR', brand: 'visa', state: 'approved_online' },
      ],
    },
    chain: 'B'.repeat(43),
  };

  it('travels in a RecordsBatch with payment records, and is strict', () => {
    expect(RecordsBatchSchema.safeParse({ batch: 'b-1', records: [report] }).success).toBe(true);
    expect(
      RecordsBatchSchema.safeParse({ batch: 'b-1', records: [{ ...report, pan: '4111' }] }).success,
    ).toBe(false);
    expect(
      RecordsBatchSchema.safeParse({
        batch: 'b-1',
        records: [{ ...report, batch: { ...report.batch, kind: 'weekly' } }],
      }).success,
    ).toBe(false);
  });
});
