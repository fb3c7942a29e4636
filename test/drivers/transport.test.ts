import { Buffer } from 'node:buffer';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  createTransport,
  registerMockPeer,
  type ByteEndpoint,
  type Transport,
} from '../../drivers/transport/transport.js';

/** The next 'data' chunk of a transport. */
function nextData(transport: Transport): Promise<Buffer> {
  return new Promise((resolve) => {
    const listener = (chunk: Buffer): void => {
      transport.off('data', listener);
      resolve(chunk);
    };
    transport.on('data', listener);
  });
}

/** The next 'close' of a transport: its error, or undefined for a requested close. */
function nextClose(transport: Transport): Promise<(Error & { code?: string }) | undefined> {
  return new Promise((resolve) => {
    const listener = (error?: Error): void => {
      transport.off('close', listener);
      resolve(error);
    };
    transport.on('close', listener);
  });
}

describe('createTransport', () => {
  it('refuses unknown paths with POS103', () => {
    expect(() => createTransport('COM3')).toThrow(/POS103/);
    expect(() => createTransport('tcp://nohost')).toThrow(/POS103/);
  });

  it('mock:// carries bytes both ways and reports an unplug as POS102', async () => {
    const state = { endpoints: [] as ByteEndpoint[], received: [] as Buffer[] };
    const unregister = registerMockPeer('transport-test', {
      attach(endpoint) {
        state.endpoints.push(endpoint);
        endpoint.onReceive((bytes) => {
          state.received.push(bytes);
          endpoint.send(Buffer.from('pong'));
        });
      },
    });
    const transport = createTransport('mock://transport-test');
    await transport.open();
    expect(transport.isOpen).toBe(true);
    const data = nextData(transport);
    await transport.write(Buffer.from('ping'));
    expect(await data).toEqual(Buffer.from('pong'));
    expect(state.received).toEqual([Buffer.from('ping')]);

    const closed = nextClose(transport);
    state.endpoints[0]?.close();
    expect((await closed)?.code).toBe('POS102');
    expect(transport.isOpen).toBe(false);
    await expect(transport.write(Buffer.of(1))).rejects.toMatchObject({ code: 'POS102' });

    // replug: the same path opens again
    await transport.open();
    expect(state.endpoints).toHaveLength(2);
    const requested = nextClose(transport);
    await transport.close();
    expect(await requested).toBeUndefined();
    unregister();
  });

  it('mock:// without a registered peer fails with POS101 naming the fix', async () => {
    await expect(createTransport('mock://nobody').open()).rejects.toThrow(/serveMock/);
    await expect(createTransport('mock://nobody').open()).rejects.toMatchObject({ code: 'POS101' });
  });

  it('tcp:// connects, carries bytes, and a server-side close is POS102', async () => {
    const server = net.createServer((socket) => {
      socket.on('data', (chunk) => {
        socket.write(chunk);
        socket.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const transport = createTransport(`tcp://127.0.0.1:${port}`);
    await transport.open();
    const data = nextData(transport);
    const closed = nextClose(transport);
    await transport.write(Buffer.from('abc'));
    expect(await data).toEqual(Buffer.from('abc'));
    expect((await closed)?.code).toBe('POS102');
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('tcp:// to a closed port fails with POS101', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await expect(createTransport(`tcp://127.0.0.1:${port}`).open()).rejects.toMatchObject({
      code: 'POS101',
    });
  });

  it('a serial path that does not exist fails with POS101', async () => {
    await expect(createTransport('/dev/does-not-exist-pos').open()).rejects.toMatchObject({
      code: 'POS101',
    });
  });
});
