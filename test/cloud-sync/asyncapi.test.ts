/**
 * `docs/asyncapi.json` (issue 13): the MQTT contract as AsyncAPI 3.0, generated from the
 * cloud-sync zod schemas, accepted by @asyncapi/parser without errors or warnings, and current —
 * regenerated and compared, so a schema or topic change without `npm run contracts` fails here.
 */
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';
import { describe, expect, it } from 'vitest';
import { CONTRACT_FILES } from '../../agent/contracts.js';
import { asyncApiDocument, TOPIC_TABLE } from '../../cloud-sync/contract-json-schema.js';
import { topics, WIRE_SCHEMAS } from '../../cloud-sync/schemas.js';

const committed = JSON.parse(readFileSync(CONTRACT_FILES.asyncapi, 'utf8')) as Record<
  string,
  unknown
>;

describe('docs/asyncapi.json', () => {
  it('is what the cloud-sync schemas make now (else: npm run contracts)', () => {
    expect(committed, `${CONTRACT_FILES.asyncapi} is stale: run "npm run contracts"`).toEqual(
      asyncApiDocument(),
    );
  });

  it('parses with @asyncapi/parser: no errors, no warnings', async () => {
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(committed));
    // Severity 0 = error, 1 = warning (Spectral); information and hints are allowed.
    expect(
      diagnostics
        .filter((d) => d.severity <= 1)
        .map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`),
    ).toEqual([]);
    expect(document).toBeDefined();
    expect(document?.version()).toBe('3.0.0');
    // The parsed model sees every channel, its operation and its MQTT binding.
    const status = document?.operations().get('sendStatus');
    expect(status?.action()).toBe('send');
    expect(status?.bindings().get('mqtt')?.value()).toMatchObject({ qos: 1, retain: true });
    expect(document?.channels().all().length).toBe(TOPIC_TABLE.length);
  }, 60_000);

  it('has a channel for every topic the agent uses and a schema for every wire message', () => {
    const channels = committed.channels as Record<string, { address: string }>;
    const addresses = new Set(Object.values(channels).map((c) => c.address));
    const deviceTopics = topics('{prefix}', 'DEVICE');
    for (const topic of Object.values(deviceTopics)) {
      expect(addresses, topic).toContain(topic.replace('DEVICE', '{deviceId}'));
    }
    const schemas = (committed.components as { schemas: Record<string, unknown> }).schemas;
    for (const name of ['Envelope', ...Object.keys(WIRE_SCHEMAS)]) {
      expect(schemas[name], name).toBeDefined();
    }
  });
});
