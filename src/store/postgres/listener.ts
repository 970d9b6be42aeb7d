/**
 * The LISTEN side of change notifications: one dedicated connection (not
 * taken from the pool, so it never starves queries), watched and opened again
 * after it drops — a server restart, a failover, a proxy that cut it.
 *
 * While the connection is up, notifications arrive within a millisecond or
 * two and a slow tick covers anything lost in between. While it is down, the
 * tick runs every second instead, so waiters keep making progress, and the
 * first thing after a reconnect is a tick: whatever happened during the gap
 * is looked at once.
 */
import pg from 'pg';

export interface ListenerOptions {
  /** How the dedicated connection is made (the pool's settings). */
  config: pg.ClientConfig;
  /** Quoted channel name, as LISTEN needs it. */
  channel: string;
  /** Called with each notification's payload, and with null for a tick. */
  onSignal: (payload: string | null) => void;
  /** Tick while listening. (Default: 30000 ms) */
  slowTickMs?: number;
  /** Tick while the connection is down. (Default: 1000 ms) */
  downTickMs?: number;
  /** How often the connection is checked with a round trip. (Default: 15000 ms) */
  pingMs?: number;
}

export class ChangeListener {
  readonly #options: ListenerOptions;
  #client: pg.Client | undefined;
  #connected = false;
  #stopped = false;
  #retryMs = 50;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #tick: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;
  /** Resolves when the first connection attempt has settled (either way). */
  readonly ready: Promise<void>;
  #settleReady!: () => void;

  constructor(options: ListenerOptions) {
    this.#options = options;
    this.ready = new Promise((resolve) => (this.#settleReady = resolve));
    this.#setTick(options.downTickMs ?? 1000);
    void this.#connect();
  }

  /** Whether the LISTEN connection is up now. */
  get connected(): boolean {
    return this.#connected;
  }

  #setTick(ms: number): void {
    clearInterval(this.#tick);
    this.#tick = setInterval(() => this.#options.onSignal(null), ms);
    this.#tick.unref();
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const client = new pg.Client({ ...this.#options.config, keepAlive: true, application_name: 'agentq-listen' });
    this.#client = client;
    let lost = false;
    const onLost = () => {
      if (lost) return;
      lost = true;
      this.#dropped(client);
    };
    client.on('error', onLost);
    client.on('end', onLost);
    client.on('notification', (msg) => this.#options.onSignal(msg.payload ?? ''));
    try {
      await client.connect();
      await client.query(`LISTEN ${this.#options.channel}`);
    } catch {
      onLost();
      this.#settleReady();
      return;
    }
    if (this.#stopped || lost) {
      if (!lost) void client.end().catch(() => {});
      this.#settleReady();
      return;
    }
    this.#connected = true;
    this.#retryMs = 50;
    this.#setTick(this.#options.slowTickMs ?? 30_000);
    clearInterval(this.#ping);
    this.#ping = setInterval(() => void this.#check(client), this.#options.pingMs ?? 15_000);
    this.#ping.unref();
    this.#settleReady();
    // Anything may have changed while we were not listening.
    this.#options.onSignal(null);
  }

  /** A round trip on the listening connection; a connection that cannot make one is replaced. */
  async #check(client: pg.Client): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.query('SELECT 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('ping timed out')), 10_000);
        }),
      ]);
    } catch {
      if (this.#client === client) {
        client.removeAllListeners('end');
        this.#dropped(client);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #dropped(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    this.#connected = false;
    clearInterval(this.#ping);
    // The broken client may still hold a socket: let it go, quietly.
    client.removeAllListeners('notification');
    client.on('error', () => {});
    void client.end().catch(() => {});
    if (this.#stopped) return;
    this.#setTick(this.#options.downTickMs ?? 1000);
    this.#options.onSignal(null);
    const wait = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, 2000);
    this.#reconnectTimer = setTimeout(() => void this.#connect(), wait);
    this.#reconnectTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#tick);
    clearInterval(this.#ping);
    clearTimeout(this.#reconnectTimer);
    const client = this.#client;
    this.#client = undefined;
    this.#connected = false;
    if (client) {
      client.removeAllListeners('notification');
      client.removeAllListeners('end');
      client.on('error', () => {});
      await client.end().catch(() => {});
    }
  }
}
