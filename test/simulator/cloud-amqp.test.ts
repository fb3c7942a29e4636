/**
 * The pure parts of the cloud core's AMQP link (simulator/cloud-amqp.ts, issue 16): MQTT topics
 * as the RabbitMQ MQTT plugin's routing keys (3.10 rabbit_mqtt_util:to_amqp/1: `/` → `.`, `+` →
 * `*`), the uplink bindings, the way back from a routing key to the topic (device ids with `.`
 * included), and the option checks of `CloudCore.start`. The link itself runs against a real
 * RabbitMQ cluster in test/e2e/cloud-amqp.e2e.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  AmqpLink,
  topicToRoutingKey,
  uplinkBindingKeys,
  uplinkTopic,
} from '../../simulator/cloud-amqp.js';
import { checkCloudCoreOptions } from '../../simulator/cloud-core-options.js';
import { topics } from '../../cloud-sync/topics.js';

const signer = { secretKey: new Uint8Array(64) };
const amqp = { url: 'amqp://cloud-core:cloud-core@127.0.0.1:5672', queue: 'uplinks' };

describe('MQTT topics as AMQP routing keys', () => {
  it('translates as the MQTT plugin does: / to . and + to *', () => {
    expect(topicToRoutingKey('pos/v1/lane-1/down/acks')).toBe('pos.v1.lane-1.down.acks');
    expect(topicToRoutingKey('pos/v1/+/up/records')).toBe('pos.v1.*.up.records');
  });

  it('binds the three uplinks with # for the device level', () => {
    expect(uplinkBindingKeys('pos/v1')).toEqual([
      'pos.v1.#.up.records',
      'pos.v1.#.up.auth',
      'pos.v1.#.status',
    ]);
  });

  it("finds an uplink's topic again, also for a device id with dots", () => {
    for (const deviceId of ['lane-1', 'store.12.lane:3']) {
      const t = topics('pos/v1', deviceId);
      for (const topic of [t.records, t.auth, t.status])
        expect(uplinkTopic('pos/v1', topicToRoutingKey(topic))).toBe(topic);
    }
  });

  it('is not an uplink: downlinks, another prefix, no device level', () => {
    const t = topics('pos/v1', 'lane-1');
    expect(uplinkTopic('pos/v1', topicToRoutingKey(t.acks))).toBeUndefined();
    expect(uplinkTopic('pos/v1', topicToRoutingKey(t.commands))).toBeUndefined();
    expect(uplinkTopic('pos/v2', topicToRoutingKey(t.records))).toBeUndefined();
    expect(uplinkTopic('pos/v1', 'pos.v1.up.records')).toBeUndefined();
  });
});

describe('CloudCore options for the AMQP mode', () => {
  it('accepts amqp with a shared ledger file (control)', () => {
    expect(() => checkCloudCoreOptions({ signer, amqp, ledgerFile: '/tmp/l.db' })).not.toThrow();
  });

  it('refuses amqp without the ledger file the instances share', () => {
    expect(() => checkCloudCoreOptions({ signer, amqp })).toThrow(/amqp needs the ledgerFile/);
  });

  it('refuses amqp together with MQTT-only options, and no broker at all', () => {
    expect(() =>
      checkCloudCoreOptions({ signer, amqp, ledgerFile: 'l.db', shareGroup: 'cloud' }),
    ).toThrow(/amqp excludes shareGroup/);
    expect(() => checkCloudCoreOptions({ signer })).toThrow(/brokerUrl .* or amqp/);
  });

  it('refuses a prefetch outside 1–65535 and an empty queue name', () => {
    const link = (extra: object) => () =>
      new AmqpLink({
        ...amqp,
        ...extra,
        prefix: 'pos/v1',
        onUplink: async () => true,
        logger: { debug() {}, info() {}, warn() {}, error() {} },
      });
    expect(link({ prefetch: 16 })).not.toThrow();
    expect(link({ prefetch: 0 })).toThrow(/prefetch 0/);
    expect(link({ prefetch: 1.5 })).toThrow(/prefetch 1.5/);
    expect(link({ queue: '' })).toThrow(/amqp.queue/);
  });
});
