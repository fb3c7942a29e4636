/**
 * The embedded MQTT broker of the simulator (architecture.md §7): aedes 1.x (MQTT 3.1.1) on a loopback TCP
 * port, for the one-command demo and the in-process tests.
 *
 * `stop()` really closes everything — every client socket (also the ones that never sent CONNECT)
 * and the listening server — so clients see a broken link exactly as with a broker crash, and
 * `start()` again listens on the same port (the demo's outage: stop for a while, start again).
 *
 * By default the broker's in-memory persistence (retained messages, persistent sessions with
 * their subscriptions and queued QoS 1 messages, MQTT 3.1.1 §3.1.2.4) survives a restart, like a
 * production broker with persistence on; `keepStateAcrossRestart: false` behaves like Mosquitto
 * with `persistence false` (sessions lost, clients must resubscribe).
 *
 * Two or more brokers started with `joinCluster` form an in-process aedes cluster (issue 16):
 * they share one message bus (mqemitter) and one persistence, as aedes nodes share Redis or
 * MongoDB in production, so a client of one node receives what a client of another publishes
 * and finds its persistent session (subscriptions, queued QoS 1 messages) on any node. Stopping
 * one node is the loss of a cluster node: its clients must fail over to another.
 */
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';

/** Options of {@link EmbeddedBroker.start}. */
export interface EmbeddedBrokerOptions {
  /** TCP port; 0 (default) picks a free one, kept for restarts. */
  port?: number;
  /** Listen address; default `127.0.0.1` (loopback only). */
  host?: string;
  /** Keep retained messages and sessions across stop/start; default true. */
  keepStateAcrossRestart?: boolean;
  /** Longest client id accepted; default 128 (aedes defaults to MQTT 3.1.1's 23 bytes). */
  maxClientIdLength?: number;
  /** Another node of the cluster to join (see the file header); it must have been started once. */
  joinCluster?: EmbeddedBroker;
}

/** What aedes uses of its message bus (aedes.js: on, removeListener, emit, close). */
interface MessageBus {
  on: (...args: unknown[]) => unknown;
  removeListener: (...args: unknown[]) => unknown;
  emit: (...args: unknown[]) => unknown;
  close: (cb: () => void) => void;
}

/** The bus and persistence the nodes of one in-process cluster share. */
interface ClusterState {
  mq: MessageBus;
  persistence: unknown;
}

/** The bus seen through a node: everything passes through but `close`, which the node may not do. */
function keepOpen(mq: MessageBus): MessageBus {
  return {
    on: (...args) => mq.on(...args),
    removeListener: (...args) => mq.removeListener(...args),
    emit: (...args) => mq.emit(...args),
    close: (cb) => cb(),
  };
}

/** An aedes broker on a TCP port, with real stop and restart. */
export class EmbeddedBroker {
  readonly host: string;
  #port: number;
  #options: EmbeddedBrokerOptions;
  #persistence: unknown;
  #cluster: ClusterState | undefined;
  #aedes: Aedes | undefined;
  #server: Server | undefined;
  #sockets = new Set<Socket>();

  private constructor(options: EmbeddedBrokerOptions) {
    this.#options = options;
    this.host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
  }

  /**
   * Starts a broker and resolves once it listens.
   *
   * @throws Error (EADDRINUSE …) when the port cannot be bound; nothing is left running then.
   */
  static async start(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
    const broker = new EmbeddedBroker(options);
    await broker.start();
    return broker;
  }

  /** The TCP port (fixed after the first start). */
  get port(): number {
    return this.#port;
  }

  /** `mqtt://host:port`. */
  get url(): string {
    return `mqtt://${this.host}:${this.#port}`;
  }

  /** True while listening. */
  get running(): boolean {
    return this.#server !== undefined;
  }

  /** The aedes instance while running (for taps in tests: `broker.aedes.on('publish', …)`). */
  get aedes(): Aedes | undefined {
    return this.#aedes;
  }

  /** Starts (again) on the same port; no-op when running. */
  async start(): Promise<void> {
    if (this.#server !== undefined) return;
    const keep = this.#options.keepStateAcrossRestart ?? true;
    const root = this.#options.joinCluster;
    if (root !== undefined) this.#cluster ??= root.#shareCluster();
    const cluster = this.#cluster;
    const aedesOptions: AedesOptions = {
      // aedes' own in-memory persistence of the previous run (aedes.close() does not destroy it).
      ...(keep && this.#persistence !== undefined ? { persistence: this.#persistence } : {}),
      ...(cluster === undefined
        ? {}
        : {
            persistence: cluster.persistence as AedesOptions['persistence'],
            // aedes closes its bus on close(): a node leaving must not close the cluster's.
            mq: keepOpen(cluster.mq) as unknown as AedesOptions['mq'],
          }),
      maxClientsIdLength: this.#options.maxClientIdLength ?? 128,
      heartbeatInterval: 60_000,
    };
    const aedes = await Aedes.createBroker(aedesOptions);
    const server = createServer((socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      aedes.handle(socket);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.#port, this.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      // aedes keeps a heartbeat timer: without this close a failed start (the port in use) left
      // the process alive after the error was printed.
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      throw error;
    }
    this.#port = (server.address() as AddressInfo).port;
    this.#aedes = aedes;
    this.#server = server;
    this.#persistence = (aedes as unknown as { persistence: unknown }).persistence;
  }

  /**
   * Makes this broker the root of an in-process cluster (idempotent) and returns what the nodes
   * share: this broker's bus and persistence, its bus no longer closed when this broker stops.
   *
   * @throws Error when this broker was never started.
   */
  #shareCluster(): ClusterState {
    if (this.#cluster !== undefined) return this.#cluster;
    const aedes = this.#aedes as unknown as { mq: MessageBus; persistence: unknown } | undefined;
    if (aedes === undefined) throw new Error('start the broker before another joins its cluster');
    const cluster: ClusterState = { mq: aedes.mq, persistence: aedes.persistence };
    aedes.mq = keepOpen(cluster.mq);
    this.#cluster = cluster;
    return cluster;
  }

  /** Stops: closes every client socket, the broker and the listening server. No-op when stopped. */
  async stop(): Promise<void> {
    const server = this.#server;
    const aedes = this.#aedes;
    if (server === undefined || aedes === undefined) return;
    this.#server = undefined;
    this.#aedes = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await closed;
  }

  /** Stops, waits `downMs` (default 0), and starts again on the same port. */
  async restart(downMs = 0): Promise<void> {
    await this.stop();
    if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
    await this.start();
  }
}
