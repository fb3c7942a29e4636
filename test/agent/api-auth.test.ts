import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import type { Response } from 'light-my-request';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ApiApp, installApiAuth, isLocalPeer, listenApi } from '../../agent/api-auth.js';
import { createLogger } from '../../agent/logger.js';
import type { Clock, TimerHandle } from '../../common/clock.js';

const TOKEN = 'a-very-long-test-token-of-at-least-32-characters';

/** A clock that only moves when the test says so. */
function manualClock(
  start = Date.parse('2026-11-21T10:00:00Z'),
): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    setTimeout: () => ({}) as TimerHandle,
    clearTimeout: () => undefined,
    advance(ms: number) {
      now += ms;
    },
  };
}

function app(clock: Clock): { app: ApiApp; guard: ReturnType<typeof installApiAuth> } {
  const server = Fastify({ loggerInstance: createLogger({ level: 'silent' }) });
  const guard = installApiAuth(server, { apiToken: TOKEN, clock });
  server.get('/v1/status', async () => ({ ok: true }));
  return { app: server, guard };
}

const get = (
  server: ApiApp,
  options: { token?: string; remoteAddress?: string } = {},
): Promise<Response> =>
  server.inject({
    method: 'GET',
    url: '/v1/status',
    remoteAddress: options.remoteAddress ?? '127.0.0.1',
    headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
  });

describe('local API access', () => {
  let clock: ReturnType<typeof manualClock>;
  let server: ApiApp;
  let guard: ReturnType<typeof installApiAuth>;

  beforeEach(() => {
    clock = manualClock();
    ({ app: server, guard } = app(clock));
  });
  afterEach(async () => server.close());

  it('answers 401 POS401 for a missing or wrong token, and never echoes it', async () => {
    const missing = await get(server);
    expect(missing.statusCode).toBe(401);
    expect(missing.json()).toMatchObject({ error: { code: 'POS401' } });
    expect(missing.json().error.message).toContain('missing bearer token');
    const wrong = await get(server, { token: 'guess-1234' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).not.toContain('guess-1234');
    expect(wrong.body).not.toContain(TOKEN);
    expect((await get(server, { token: TOKEN })).statusCode).toBe(200);
  });

  it('answers 403 POS403 to a non-loopback peer even with the right token', async () => {
    for (const remoteAddress of ['10.0.0.5', '192.168.1.20', '::ffff:10.1.2.3', 'fe80::1']) {
      const res = await get(server, { token: TOKEN, remoteAddress });
      expect(res.statusCode, remoteAddress).toBe(403);
      expect(res.json().error.code).toBe('POS403');
    }
    for (const remoteAddress of ['127.0.0.1', '127.0.1.1', '::1', '::ffff:127.0.0.1'])
      expect((await get(server, { token: TOKEN, remoteAddress })).statusCode, remoteAddress).toBe(
        200,
      );
    expect(guard.counters().POS403).toBe(4);
    expect(isLocalPeer(undefined)).toBe(true);
  });

  it('slows down repeated failures with a doubling delay; a right token is never slowed down', async () => {
    for (let i = 0; i < 3; i++)
      expect((await get(server, { token: `bad-${i}` })).statusCode).toBe(401);
    // Blocked for 1 s — for wrong tokens only: the POS app with the right token (same
    // 127.0.0.1) is let through at once.
    const blocked = await get(server, { token: 'bad-again' });
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json().error.code).toBe('POS402');
    expect(blocked.headers['retry-after']).toBe('1');
    expect((await get(server, { token: TOKEN })).statusCode).toBe(200);
    expect((await get(server)).statusCode).toBe(429);
    clock.advance(1000);
    expect((await get(server, { token: 'bad-3' })).statusCode).toBe(401);
    expect((await get(server, { token: 'bad' })).headers['retry-after']).toBe('2');
    expect((await get(server, { token: TOKEN })).statusCode).toBe(200);
    clock.advance(2000);
    expect((await get(server, { token: 'bad-4' })).statusCode).toBe(401);
    expect((await get(server, { token: 'bad' })).headers['retry-after']).toBe('4');
    // A right token does not hand the guesser fresh free tries.
    expect((await get(server, { token: TOKEN })).statusCode).toBe(200);
    clock.advance(4000);
    expect((await get(server, { token: 'bad-5' })).statusCode).toBe(401);
    expect((await get(server, { token: 'bad' })).headers['retry-after']).toBe('8');
    // Forgotten after maxDelayMs (300 s) without a failure: three free failures again.
    clock.advance(300_001);
    for (let i = 0; i < 3; i++)
      expect((await get(server, { token: `bad-${i}` })).statusCode).toBe(401);
    expect((await get(server, { token: 'bad' })).statusCode).toBe(429);
    expect(guard.counters()).toMatchObject({ POS401: 9, POS402: 6 });
  });

  it('a local process sending wrong tokens for minutes never locks out the right token', async () => {
    for (let i = 0; i < 200; i++) {
      await get(server, { token: 'guess' });
      clock.advance(1500);
      expect((await get(server, { token: TOKEN })).statusCode).toBe(200);
    }
  });

  it('caps the delay', async () => {
    const capped = Fastify({ loggerInstance: createLogger({ level: 'silent' }) });
    installApiAuth(capped, { apiToken: TOKEN, clock, maxDelayMs: 5000 });
    capped.get('/v1/status', async () => ({ ok: true }));
    for (let i = 0; i < 10; i++) {
      await get(capped, { token: 'bad' });
      clock.advance(5000);
    }
    await get(capped, { token: 'bad' });
    expect((await get(capped, { token: 'bad' })).headers['retry-after']).toBe('5');
    await capped.close();
  });
});

describe('local API on a UNIX socket', () => {
  const umaskBefore = process.umask();
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pos-api-sock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('listens on api.socketPath with mode 0600 and checks the token there too', async () => {
    const { app: server } = app(manualClock());
    const socketPath = path.join(dir, 'api.sock');
    const url = await listenApi(server, { host: '127.0.0.1', port: 0, socketPath });
    expect(url).toBe(`unix:${socketPath}`);
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    const call = (token?: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpRequest(
          {
            socketPath,
            path: '/v1/status',
            headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.once('error', reject);
        req.end();
      });
    expect(await call(TOKEN)).toBe(200);
    expect(await call()).toBe(401);
    await server.close();
  });

  it('removes a stale socket file left by a crashed agent; the new socket is 0600', async () => {
    const socketPath = path.join(dir, 'api.sock');
    // A real crash: a process that listens on the socket and is killed, leaving the file behind.
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ],
      { stdio: 'ignore' },
    );
    expect(child.signal).toBe('SIGKILL');
    expect(lstatSync(socketPath).isSocket()).toBe(true);
    const { app: server } = app(manualClock());
    expect(await listenApi(server, { host: '127.0.0.1', port: 0, socketPath })).toBe(
      `unix:${socketPath}`,
    );
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    expect(process.umask()).toBe(umaskBefore);
    await server.close();
  });

  it('does not remove a socket another process answers on', async () => {
    const socketPath = path.join(dir, 'api.sock');
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(socketPath, resolve));
    const { app: server } = app(manualClock());
    await expect(listenApi(server, { host: '127.0.0.1', port: 0, socketPath })).rejects.toThrow(
      /EADDRINUSE/,
    );
    expect(lstatSync(socketPath).isSocket()).toBe(true);
    await server.close();
    await new Promise((resolve) => other.close(resolve));
  });
});
