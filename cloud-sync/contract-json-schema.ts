/**
 * The machine-readable description of the wire contract (DESIGN §5: "a machine-readable
 * description (JSON Schema / AsyncAPI) is generated from them"): one JSON Schema 2020-12
 * document with every message in `$defs`, generated with `z.toJSONSchema` from the zod schemas of
 * schemas.ts, plus the topic table and the envelope in `x-topics` / `$defs.Envelope`.
 *
 * Print it: `node dist/cloud-sync/contract-json-schema.js > contract.schema.json`.
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
    title: 'pos-edge-agent ↔ cloud core wire contract (DESIGN §5)',
    description:
      'Every MQTT payload is an Envelope whose `body` is the JSON text of one of the messages ' +
      'below, signed with Ed25519 over its UTF-8 bytes. Uplinks refuse unknown keys; downlinks ' +
      'ignore them.',
    'x-topics': {
      '{p}/{d}/up/records': { direction: 'up', qos: 1, message: 'RecordsBatch' },
      '{p}/{d}/up/auth': { direction: 'up', qos: 1, message: 'AuthRequest' },
      '{p}/{d}/status': { direction: 'up', qos: 1, retained: true, message: 'Status' },
      '{p}/{d}/down/acks': { direction: 'down', qos: 1, message: 'Acks' },
      '{p}/{d}/down/auth': { direction: 'down', qos: 1, message: 'AuthResponse' },
      '{p}/{d}/down/commands': { direction: 'down', qos: 1, message: 'Command' },
    },
    $defs: defs,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(contractJsonSchema(), null, 2)}\n`);
}
