/**
 * Waiting for an observable condition in tests that run on real timers (brokers, ptys, HTTP).
 * It polls; it never asserts on elapsed time (rule 9). Tests on an injected fake clock that must
 * not touch real timers poll with `setImmediate` instead.
 */

/**
 * Resolves once `condition()` is true, polling every `pollMs`.
 *
 * @param options.what — what is awaited, for the error message.
 * @param options.timeoutMs — give up after this many ms (default 25000, under vitest's 30 s).
 * @throws Error `timed out after N ms waiting for <what>` when the condition never holds.
 */
export async function until(
  condition: () => boolean,
  options: { what?: string; timeoutMs?: number; pollMs?: number } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 25_000;
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${options.what ?? 'the condition'}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 5));
  }
}
