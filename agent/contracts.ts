/**
 * The machine-readable contracts, generated from the zod schemas that the code validates with:
 * - `docs/openapi.json` — the local API (OpenAPI 3.1), from agent/api-schemas.ts through the
 *   routes of agent/api.ts (fastify-type-provider-zod + @fastify/swagger): the same document
 *   the agent serves at `GET /openapi.json`;
 * - `docs/asyncapi.json` — the MQTT contract with the cloud core (AsyncAPI 3.0), from the
 *   cloud-sync zod schemas (cloud-sync/contract-json-schema.ts);
 * - `docs/error-codes.md` — every error code with its name, HTTP status and fix, from the four
 *   error tables (agent/error-docs.ts).
 *
 * `npm run contracts` rewrites all three; test/agent/api-openapi.test.ts,
 * test/cloud-sync/asyncapi.test.ts and test/common/error-codes.test.ts fail while a committed
 * file differs from what the code makes.
 */
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { asyncApiDocument } from '../cloud-sync/contract-json-schema.js';
import { buildApi } from './api.js';
import { errorCodesMarkdown } from './error-docs.js';
import { createLogger } from './logger.js';
import { publishedOpenApi } from './openapi-info.js';
import type { PaymentService } from './payment-service.js';
import type { PaymentStore } from '../store-forward/payment-store.js';

/**
 * The OpenAPI 3.1 document of the local API, as `GET /openapi.json` serves it. Builds the API
 * with inert parts (no store, no PIN pad, nothing listening): only the routes and their schemas
 * matter here.
 */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const payments = Object.assign(new EventEmitter(), {
    stopping: false,
    policy: {
      perTransactionLimitMinor: {},
      totalLimitMinor: {},
      maxCount: 0,
      forwardingDeadlineHours: 0,
      warningBeforeDeadlineHours: 0,
    },
  }) as unknown as PaymentService;
  const app = buildApi({
    apiToken: 'contract-generation-only',
    payments,
    store: {} as PaymentStore,
    status: () => {
      throw new Error('not running');
    },
    logger: createLogger({ level: 'silent' }),
    metrics: { metrics: async () => '', contentType: 'text/plain' },
  });
  await app.ready();
  const document = publishedOpenApi(app.swagger() as unknown as Record<string, unknown>);
  await app.close();
  return document;
}

/** The committed files, relative to the repository root. */
export const CONTRACT_FILES = {
  openapi: 'docs/openapi.json',
  asyncapi: 'docs/asyncapi.json',
  errorCodes: 'docs/error-codes.md',
} as const;

/** A document as committed: two-space JSON with a final newline (prettier's format for JSON). */
export function contractText(document: unknown): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** Writes the three documents under `root`. */
export async function writeContracts(root: string): Promise<void> {
  writeFileSync(path.join(root, CONTRACT_FILES.openapi), contractText(await openApiDocument()));
  writeFileSync(path.join(root, CONTRACT_FILES.asyncapi), contractText(asyncApiDocument()));
  writeFileSync(path.join(root, CONTRACT_FILES.errorCodes), errorCodesMarkdown());
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Run from dist/agent/: the repository root is two folders up.
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  await writeContracts(root);
  process.stdout.write(
    `wrote ${CONTRACT_FILES.openapi}, ${CONTRACT_FILES.asyncapi} and ${CONTRACT_FILES.errorCodes}\n`,
  );
}
