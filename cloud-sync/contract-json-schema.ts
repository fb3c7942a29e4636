/**
 * The machine-readable description of the wire contract (architecture.md §5: "a machine-readable
 * description (JSON Schema / AsyncAPI) is generated from them"): one JSON Schema 2020-12
 * document with every message in `$defs`, generated with `z.toJSONSchema` from the zod schemas of
 * schemas.ts, plus the topic table and the envelope in `x-topics` / `$defs.Envelope`.
 *
 * Print it: `node dist/cloud-sync/contract-json-schema.js > contract.schema.json`.
 *
 * {@link asyncApiDocument} makes the same contract an AsyncAPI 3.0 document (issue 13): one
 * channel per topic of {@link TOPIC_TABLE}, the agent's send/receive operations with their MQTT
 * bindings (QoS, retained), the broker's session settings and last will, and every message as
 * the signed envelope whose `body` is the JSON text of the message's own schema. It is committed
 * as `docs/asyncapi.json` (`npm run contracts`) and checked by test/cloud-sync/asyncapi.test.ts
 * with @asyncapi/parser.
 */
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { EnvelopeSchema } from './envelope.js';
import { WIRE_SCHEMAS } from './schemas.js';

/** The JSON Schema document of the contract (a plain JSON value). */
export function contractJsonSchema(): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries({ Envelope: EnvelopeSchema, ...WIRE_SCHEMAS })) {
    // Refinements (seq order, expiry after issue) cannot be expressed in JSON Schema; they are
    // described in the message's docs and enforced by the zod schemas at both ends.
    const generated = z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'any' });
    delete (generated as { $schema?: unknown }).$schema;
    defs[name] = generated;
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'urn:pos-edge-agent:wire-contract:v1',
    title: 'pos-edge-agent ↔ cloud core wire contract (architecture.md §5)',
    description:
      'Every MQTT payload is an Envelope whose `body` is the JSON text of one of the messages ' +
      'below, signed with Ed25519 over its UTF-8 bytes. Uplinks refuse unknown keys; downlinks ' +
      'ignore them.',
    'x-topics': Object.fromEntries(
      TOPIC_TABLE.map((t) => [
        t.topic,
        {
          direction: t.direction,
          qos: t.qos,
          ...(t.retained ? { retained: true } : {}),
          message: t.message,
        },
      ]),
    ),
    $defs: defs,
  };
}

/** One topic of the contract (architecture.md §5 table, plus issue 5's command results and claims). */
export interface TopicEntry {
  /** AsyncAPI channel id. */
  id: string;
  /** `{p}` = topic prefix (default `pos/v1`), `{d}` = device id (also the MQTT client id). */
  topic: string;
  /** `up`: the agent publishes; `down`: the cloud core publishes, the agent subscribes. */
  direction: 'up' | 'down';
  qos: 0 | 1;
  retained: boolean;
  /** Name of the body schema in WIRE_SCHEMAS. */
  message: keyof typeof WIRE_SCHEMAS;
  /** Who signs the envelope. */
  signer: string;
  summary: string;
}

const DEVICE_KEY = 'the device key (Ed25519, registered with the cloud core)';
const CLOUD_KEY = 'the cloud key (Ed25519, pinned at provisioning)';

/** The topics, their direction, QoS, retain flag and message; the one table both documents use. */
export const TOPIC_TABLE: readonly TopicEntry[] = [
  {
    id: 'records',
    topic: '{p}/{d}/up/records',
    direction: 'up',
    qos: 1,
    retained: false,
    message: 'RecordsBatch',
    signer: DEVICE_KEY,
    summary:
      'A batch of outbox records in per-device seq order (at most maxMessageBytes, 128 KiB). Resent with backoff until acknowledged on down/acks; the cloud dedupes by key.',
  },
  {
    id: 'auth',
    topic: '{p}/{d}/up/auth',
    direction: 'up',
    qos: 1,
    retained: false,
    message: 'AuthRequest',
    signer: DEVICE_KEY,
    summary:
      'Online authorization request for one payment; answered on down/auth. A timeout is ambiguous: the same key reaches the cloud later as a record or a void record.',
  },
  {
    id: 'status',
    topic: '{p}/{d}/status',
    direction: 'up',
    qos: 1,
    retained: true,
    message: 'Status',
    signer: DEVICE_KEY,
    summary:
      'Retained online/offline status with the queue; the last will publishes a signed `offline`.',
  },
  {
    id: 'commandResults',
    topic: '{p}/{d}/up/command-results',
    direction: 'up',
    qos: 1,
    retained: false,
    message: 'CommandResult',
    signer: DEVICE_KEY,
    summary:
      'What the agent did with a cloud command: applied, refused (expired, replayed) or failed.',
  },
  {
    id: 'acks',
    topic: '{p}/{d}/down/acks',
    direction: 'down',
    qos: 1,
    retained: false,
    message: 'Acks',
    signer: CLOUD_KEY,
    summary:
      "The cloud core's acknowledgement of a batch, per idempotency key (accepted, duplicate with the original outcome, rejected).",
  },
  {
    id: 'authResponse',
    topic: '{p}/{d}/down/auth',
    direction: 'down',
    qos: 1,
    retained: false,
    message: 'AuthResponse',
    signer: CLOUD_KEY,
    summary: 'The outcome of an online authorization: approved with an auth code, or declined.',
  },
  {
    id: 'commands',
    topic: '{p}/{d}/down/commands',
    direction: 'down',
    qos: 1,
    retained: false,
    message: 'Command',
    signer: CLOUD_KEY,
    summary:
      'A cloud command with a unique id and an expiry; a replayed or expired one is refused.',
  },
  {
    id: 'claimRequest',
    topic: '{p}/claims/{d}/request',
    direction: 'up',
    qos: 1,
    retained: false,
    message: 'ClaimRequest',
    signer: "the device's NEW key (proof of possession)",
    summary:
      'Registration by claim, sent with the fleet claim certificate: identity, public key, CSR.',
  },
  {
    id: 'claimResponse',
    topic: '{p}/claims/{d}/response',
    direction: 'down',
    qos: 1,
    retained: false,
    message: 'ClaimResponse',
    signer: CLOUD_KEY,
    summary: 'The signed client certificate, or why the claim was refused.',
  },
];

/** JSON Schema draft-07 (AsyncAPI 3.0's default schema format) of a zod schema. */
function draft7(schema: z.ZodType): Record<string, unknown> {
  const generated = z.toJSONSchema(schema, { target: 'draft-7', unrepresentable: 'any' });
  delete (generated as { $schema?: unknown }).$schema;
  return generated as Record<string, unknown>;
}

/**
 * The AsyncAPI 3.0 document of the MQTT contract, from the agent's side: `send` = the agent
 * publishes, `receive` = it subscribes. A plain JSON value.
 */
export function asyncApiDocument(): Record<string, unknown> {
  const schemas: Record<string, unknown> = { Envelope: draft7(EnvelopeSchema) };
  for (const [name, schema] of Object.entries(WIRE_SCHEMAS)) schemas[name] = draft7(schema);
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  for (const t of TOPIC_TABLE) {
    const address = t.topic.replace('{p}', '{prefix}').replace('{d}', '{deviceId}');
    messages[t.message] ??= {
      name: t.message,
      title: `${t.message} in a signed envelope`,
      contentType: 'application/json',
      summary: `An Envelope whose body is the JSON text of a ${t.message}.`,
      description: [
        `The MQTT payload is an Envelope \`{ v: 1, kid, body, sig }\`: \`body\` is the JSON text of a`,
        `${t.message} (#/components/schemas/${t.message}), \`sig\` the Ed25519 signature`,
        '(`nacl.sign.detached`, base64) over the UTF-8 bytes of `body`, `kid` the first 16 hex digits',
        'of SHA-256 of the public key. The receiver verifies the signature with the pinned or',
        'registered key FIRST, then parses `body` with the schema. Uplinks refuse unknown keys;',
        'downlinks ignore them.',
      ].join(' '),
      payload: {
        allOf: [
          { $ref: '#/components/schemas/Envelope' },
          {
            type: 'object',
            properties: {
              body: {
                type: 'string',
                contentMediaType: 'application/json',
                description: `JSON text of a ${t.message}`,
                'x-body-schema': { $ref: `#/components/schemas/${t.message}` },
              },
            },
          },
        ],
      },
    };
    channels[t.id] = {
      address,
      title: t.topic,
      description: `${t.summary} Signed by ${t.signer}.`,
      parameters: {
        prefix: { $ref: '#/components/parameters/prefix' },
        deviceId: { $ref: '#/components/parameters/deviceId' },
      },
      messages: { [t.message]: { $ref: `#/components/messages/${t.message}` } },
    };
    operations[
      `${t.direction === 'up' ? 'send' : 'receive'}${t.id[0]?.toUpperCase() ?? ''}${t.id.slice(1)}`
    ] = {
      action: t.direction === 'up' ? 'send' : 'receive',
      channel: { $ref: `#/channels/${t.id}` },
      summary: t.summary,
      messages: [{ $ref: `#/channels/${t.id}/messages/${t.message}` }],
      bindings: {
        mqtt: {
          qos: t.qos,
          retain: t.retained,
          bindingVersion: '0.2.0',
        },
      },
    };
  }
  return {
    asyncapi: '3.0.0',
    id: 'urn:pos-edge-agent:wire-contract:v1',
    info: {
      title: 'pos-edge-agent ↔ cloud core MQTT contract',
      version: '1.0.0',
      description: [
        'The wire contract between the terminal agent and the cloud core (architecture.md §5), generated',
        'from the zod schemas of cloud-sync/ that both sides validate with. MQTT 3.1.1 or 5, QoS 1,',
        'persistent session (clean session off), client id = device id, so a broker can restrict',
        'each device to `{prefix}/{deviceId}/#`. A PUBACK only means the broker took a message: a',
        'record is done when its acknowledgement for its idempotency key arrives on down/acks.',
        'Described from the agent: `send` = the agent publishes, `receive` = it subscribes.',
      ].join(' '),
    },
    defaultContentType: 'application/json',
    servers: {
      broker: {
        host: 'broker.example.com:8883',
        protocol: 'mqtts',
        description:
          'Any MQTT 3.1.1 broker (Mosquitto, aedes, AWS IoT Core, Azure IoT Hub); mutual TLS with the device certificate (CN = device id). Development setups use mqtt:// on loopback.',
        bindings: {
          mqtt: {
            clientId: '{deviceId}',
            cleanSession: false,
            lastWill: {
              topic: '{prefix}/{deviceId}/status',
              qos: 1,
              message: 'a signed Status with state "offline"',
              retain: true,
            },
            keepAlive: 30,
            bindingVersion: '0.2.0',
          },
        },
      },
    },
    channels,
    operations,
    components: {
      parameters: {
        prefix: { default: 'pos/v1', description: 'the topic prefix (config broker.topicPrefix)' },
        deviceId: {
          description:
            'the device id, also the MQTT client id: 1–128 of A–Z a–z 0–9 . _ : -, starting with a letter or digit',
        },
      },
      messages,
      schemas,
    },
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(contractJsonSchema(), null, 2)}\n`);
}
