/**
 * waitForConnect, the wait behind both links' whenConnected(): resolves at `connect`, waits
 * through `error` events (failed attempts that are retried), and on timeout rejects with the
 * link's coded error and leaves no listener behind.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { waitForConnect } from '../../cloud-sync/wait-connect.js';

describe('waitForConnect', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('resolves at the next connect, after failed attempts reported as errors', async () => {
    const link = new EventEmitter();
    link.on('error', () => undefined);
    const waiting = waitForConnect(link, 1000, () => new Error('late'));
    link.emit('error', new Error('ECONNREFUSED'));
    vi.advanceTimersByTime(999);
    link.emit('connect');
    await expect(waiting).resolves.toBeUndefined();
    expect(link.listenerCount('connect')).toBe(0);
  });

  it('rejects with the given error after the timeout and stops listening', async () => {
    const link = new EventEmitter();
    const waiting = waitForConnect(link, 1000, () => new Error('broker not reachable (POS301)'));
    vi.advanceTimersByTime(1000);
    await expect(waiting).rejects.toThrow('broker not reachable (POS301)');
    expect(link.listenerCount('connect')).toBe(0);
  });
});
