import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../common/agent-error.js';
import {
  AgentConfigSchema,
  closestKey,
  CONFIG_DEFAULTS,
  editDistance,
  loadConfig,
  parseConfig,
  syncLimits,
} from '../../agent/config.js';

const good = {
  deviceId: 'store-0042-lane-3',
  dataDir: 'data',
  keysDir: 'keys',
  pinPad: { path: '/dev/ttyUSB0' },
  broker: { url: 'mqtt://127.0.0.1:1883', development: true },
};

describe('config', () => {
  it('fills in the documented defaults', () => {
    const config = parseConfig(good);
    expect(config.pinPad).toMatchObject({
      ackTimeoutMs: 1000,
      interByteTimeoutMs: 500,
      maxTransmissions: 3,
    });
    expect(config.sync).toEqual({
      maxMessageBytes: 131_072,
      maxInFlightBatches: 16,
      ackTimeoutMs: 10_000,
      maxCommandLifetimeMs: 86_400_000,
      brokerLimits: 'none',
    });
    expect(syncLimits(config.sync)).toEqual({
      maxMessageBytes: 131_072,
      maxInFlightBatches: 16,
      maxPublishesPerSecond: undefined,
    });
    expect(config.broker.topicPrefix).toBe('pos/v1');
    expect(config.api.host).toBe('127.0.0.1');
  });

  it('refuses a bad config listing every problem at once', () => {
    const bad = {
      ...good,
      deviceId: 'Store 42',
      pinPad: { path: 'COM3', ackTimeoutMs: 5 },
      broker: { url: 'http://example' },
      api: { host: '0.0.0.0' },
      pinpad: {},
    };
    let error: unknown;
    try {
      parseConfig(bad, 'bad.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AgentError);
    const agentError = error as AgentError;
    expect(agentError.code).toBe('POS501');
    expect(agentError.message).toContain('bad.json has 6 problems');
    for (const where of [
      'deviceId',
      'pinPad.path',
      'pinPad.ackTimeoutMs',
      'broker.url',
      'api.host',
      'pinpad: unknown key; did you mean `pinPad`?',
    ]) {
      expect(agentError.message).toContain(where);
    }
  });

  it('says a missing field is required instead of naming a JavaScript type', () => {
    const { dataDir: _dataDir, ...withoutDataDir } = good;
    expect(() => parseConfig(withoutDataDir)).toThrow(/dataDir: is required/);
  });

  it('refuses plaintext MQTT unless the config says it is a development setup, even on loopback', () => {
    expect(() => parseConfig({ ...good, broker: { url: 'mqtt://127.0.0.1:1883' } })).toThrow(
      /broker.url: plaintext mqtt:\/\/ is refused.*POS501/s,
    );
    expect(parseConfig(good).broker.development).toBe(true);
  });

  it('resolves relative directories against the config file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-config-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(good));
    const config = loadConfig(file);
    expect(config.dataDir).toBe(path.join(dir, 'data'));
    expect(config.keysDir).toBe(path.join(dir, 'keys'));
  });

  it('names a file that is not JSON', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pos-config-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, '{ deviceId: ');
    expect(() => loadConfig(file)).toThrow(/is not valid JSON.*POS501/s);
    expect(() => loadConfig(path.join(dir, 'missing.json'))).toThrow(
      /cannot read config file.*POS501/s,
    );
  });

  it('brokerLimits aws-iot-core applies AWS IoT Core’s per-connection limits; a lower explicit cap wins', () => {
    const base = {
      deviceId: 'lane-1',
      dataDir: '/tmp/x',
      keysDir: '/tmp/k',
      pinPad: { path: 'tcp://127.0.0.1:1' },
      broker: { url: 'mqtt://127.0.0.1:1883', development: true },
    };
    const aws = parseConfig({ ...base, sync: { brokerLimits: 'aws-iot-core' } });
    expect(syncLimits(aws.sync)).toEqual({
      maxMessageBytes: 131_072,
      maxInFlightBatches: 100,
      maxPublishesPerSecond: 100,
    });
    const slower = parseConfig({
      ...base,
      sync: { brokerLimits: 'aws-iot-core', maxPublishesPerSecond: 20, maxMessageBytes: 65_536 },
    });
    expect(syncLimits(slower.sync)).toMatchObject({
      maxPublishesPerSecond: 20,
      maxMessageBytes: 65_536,
    });
    expect(() => parseConfig({ ...base, sync: { brokerLimits: 'aws' } })).toThrow(/brokerLimits/);
    // Regression: the preset replaced an explicit in-flight limit with its own 100.
    const narrow = parseConfig({
      ...base,
      sync: { brokerLimits: 'aws-iot-core', maxInFlightBatches: 4 },
    });
    expect(syncLimits(narrow.sync).maxInFlightBatches).toBe(4);
    const wide = parseConfig({
      ...base,
      sync: { brokerLimits: 'aws-iot-core', maxInFlightBatches: 500 },
    });
    expect(syncLimits(wide.sync).maxInFlightBatches).toBe(100);
  });

  it('broker.urls lists the cluster nodes in order; broker.url still works as one endpoint (issue 16)', () => {
    const one = parseConfig(good);
    expect(one.broker.urls).toEqual(['mqtt://127.0.0.1:1883']);
    expect(one.broker.url).toBe('mqtt://127.0.0.1:1883');
    expect(one.broker.reconnectMaxMs).toBe(30_000);
    const list = parseConfig({
      ...good,
      broker: { urls: ['mqtt://127.0.0.1:1883', 'mqtt://localhost:1884'], development: true },
    });
    expect(list.broker.urls).toEqual(['mqtt://127.0.0.1:1883', 'mqtt://localhost:1884']);
    expect(list.broker.url).toBe('mqtt://127.0.0.1:1883');
  });

  it('refuses broker.url with broker.urls, an empty list, mixed schemes and a plaintext non-loopback node (POS501 with the fix)', () => {
    const bad = (broker: Record<string, unknown>): AgentError => {
      try {
        parseConfig({ ...good, broker });
      } catch (error) {
        if (error instanceof AgentError) return error;
      }
      throw new Error('not refused');
    };
    const both = bad({
      url: 'mqtt://127.0.0.1:1',
      urls: ['mqtt://127.0.0.1:2'],
      development: true,
    });
    expect(both.code).toBe('POS501');
    expect(both.message).toMatch(/broker\.url: give broker\.urls .* not both: move the URL/);
    expect(bad({ development: true }).message).toMatch(
      /broker\.urls: is required: the broker nodes/,
    );
    expect(bad({ urls: [], development: true }).message).toMatch(/broker\.urls/);
    expect(
      bad({ urls: ['mqtt://127.0.0.1:1', 'mqtts://broker:8883'], development: true }).message,
    ).toMatch(/mixes mqtt:\/\/ and mqtts:\/\//);
    expect(
      bad({ urls: ['mqtt://127.0.0.1:1', 'mqtt://10.0.0.9:1883'], development: true }).message,
    ).toMatch(/broker\.urls\.1: plaintext mqtt:\/\/ to 10\.0\.0\.9 is refused/);
    expect(bad({ urls: ['mqtts://a:8883', 'mqtts://b:8883'] }).message).toMatch(/caFile/);
  });

  it('names the key a misspelt one most likely meant; a misspelt required key is one problem', () => {
    const { pinPad, ...withoutPinPad } = good;
    let error: unknown;
    try {
      parseConfig({ ...withoutPinPad, pinpad: pinPad }, 'typo.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AgentError);
    const agentError = error as AgentError;
    expect(agentError.code).toBe('POS501');
    expect(agentError.message).toContain('typo.json has 1 problem;');
    expect(agentError.message).toContain(
      '1. pinpad: unknown key; did you mean `pinPad`? (pinPad is required and missing)',
    );
    expect(agentError.details).toEqual({
      problems: [
        {
          path: 'pinpad',
          message: 'unknown key; did you mean `pinPad`? (pinPad is required and missing)',
        },
      ],
    });
  });

  it('suggests in nested sections and array items, and lists the known keys when nothing is close', () => {
    const message = (input: unknown): string => {
      try {
        parseConfig(input);
      } catch (e) {
        return (e as AgentError).message;
      }
      throw new Error('parseConfig accepted a bad config');
    };
    const nested = message({
      ...good,
      pinPad: { path: '/dev/ttyUSB0', ackTimeout: 800 },
      api: { prot: 7421 },
      cardReaders: [
        { name: 'msr', path: 'hid://0801:0002', kind: 'hid-msr', reconectMaxDelayMs: 1 },
      ],
    });
    expect(nested).toContain('has 3 problems');
    expect(nested).toContain('pinPad.ackTimeout: unknown key; did you mean `ackTimeoutMs`?');
    expect(nested).toContain('api.prot: unknown key; did you mean `port`?');
    expect(nested).toContain(
      'cardReaders.0.reconectMaxDelayMs: unknown key; did you mean `reconnectMaxDelayMs`?',
    );
    expect(message({ ...good, retention: { keepForever: true } })).toContain(
      'retention.keepForever: unknown key; remove it (known here: acknowledgedDays)',
    );
  });

  it('regression: a misspelt broker key gets its suggestion too (the section is a transform pipe)', () => {
    let message = '';
    try {
      parseConfig({
        ...good,
        broker: { url: 'mqtt://127.0.0.1:1883', developmnt: true },
      });
    } catch (e) {
      message = (e as AgentError).message;
    }
    expect(message).toContain('broker.developmnt: unknown key; did you mean `development`?');
  });

  it('closestKey: nearest by edit distance, case ignored, a third of the letters at most', () => {
    expect(editDistance('host', 'hots')).toBe(1); // a swap of neighbours is one edit
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(closestKey('pinpad', ['pinPad', 'cardReaders'])).toBe('pinPad');
    expect(closestKey('hots', ['host', 'port'])).toBe('host');
    expect(closestKey('colour', ['level', 'file'])).toBeUndefined();
    expect(closestKey('x', [])).toBeUndefined();
  });

  it('keeps every default in the schema: a section left out equals `{}` parsed by the schema', () => {
    const config = parseConfig(good);
    for (const section of Object.keys(CONFIG_DEFAULTS) as (keyof typeof CONFIG_DEFAULTS)[]) {
      expect(config[section], section).toEqual(CONFIG_DEFAULTS[section]);
      expect(parseConfig({ ...good, [section]: {} })[section], section).toEqual(
        CONFIG_DEFAULTS[section],
      );
    }
    expect(CONFIG_DEFAULTS.api).toEqual({ host: '127.0.0.1', port: 7420 });
    // Every section whose fields all have defaults is in CONFIG_DEFAULTS (no second copy).
    const defaulted = Object.entries(AgentConfigSchema.shape)
      .filter(([, schema]) => schema.safeParse(undefined).success)
      .map(([key]) => key)
      .filter((key) => key !== 'cardReaders' && key !== 'tenantId' && key !== 'storeId');
    expect(defaulted.sort()).toEqual(Object.keys(CONFIG_DEFAULTS).sort());
  });

  it('the PIN pad link defaults docs/architecture.md §3.1 quotes are the schema’s', () => {
    const doc = readFileSync(new URL('../../docs/architecture.md', import.meta.url), 'utf8');
    const quoted =
      /Defaults \(`pinPad`[^)]*\), all config with the unit in the name:([^.]*)\./s.exec(doc);
    expect(quoted).not.toBeNull();
    const pairs = [...(quoted?.[1] ?? '').matchAll(/`(\w+)` (\d+)/g)].map(([, k, v]) => [
      k,
      Number(v),
    ]);
    expect(pairs.length).toBe(3);
    expect(Object.fromEntries(pairs)).toEqual(
      Object.fromEntries(
        pairs.map(([k]) => [k, (parseConfig(good).pinPad as Record<string, unknown>)[k as string]]),
      ),
    );
  });
});
