/**
 * `docs/openapi.json` (issue 13): generated from the zod schemas the routes validate with, a
 * valid OpenAPI 3.1 document, and current — the test regenerates it and compares, so a route or
 * schema change without `npm run contracts` fails here, naming the fix.
 */
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { CONTRACT_FILES, openApiDocument } from '../../agent/contracts.js';

const committed = JSON.parse(readFileSync(CONTRACT_FILES.openapi, 'utf8')) as Record<
  string,
  unknown
>;

type Operation = {
  parameters?: Array<{ in: string; name: string; required?: boolean; description?: string }>;
  responses: Record<string, { description?: string }>;
  requestBody?: unknown;
};

describe('docs/openapi.json', () => {
  it('is what the routes and schemas make now (else: npm run contracts)', async () => {
    const generated = await openApiDocument();
    expect(committed, `${CONTRACT_FILES.openapi} is stale: run "npm run contracts"`).toEqual(
      generated,
    );
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(committed);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('documents the required Idempotency-Key, the error codes and examples', () => {
    const paths = committed.paths as Record<string, Record<string, Operation>>;
    const create = paths['/v1/payments']?.post as Operation;
    const key = create.parameters?.find((p) => p.in === 'header' && p.name === 'idempotency-key');
    expect(key?.required).toBe(true);
    expect(key?.description).toMatch(/same key on every retry/);
    expect(Object.keys(create.responses).sort()).toEqual(
      ['200', '201', '400', '401', '403', '409', '422', '429', '503', '504'].sort(),
    );
    expect(create.responses['400']?.description).toContain('POS406');
    const info = committed.info as { description: string };
    for (const code of ['POS401', 'POS405', 'POS406', 'POS407', 'POS409', 'POS410', 'POS420']) {
      expect(info.description, code).toContain(code);
    }
    const schemas = (committed.components as { schemas: Record<string, { examples?: unknown[] }> })
      .schemas;
    expect(schemas.Payment?.examples?.length).toBeGreaterThan(0);
    expect(schemas.Error?.examples?.length).toBeGreaterThan(0);
    // Every route of the API is in the document (the page's files and /login are not the API).
    expect(Object.keys(paths).sort()).toEqual(
      [
        '/metrics',
        '/v1/events',
        '/v1/login-codes',
        '/v1/payments',
        '/v1/payments/{id}',
        '/v1/payments/{id}/cancel',
        '/v1/status',
      ].sort(),
    );
  });
});
