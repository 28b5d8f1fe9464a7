/**
 * The gRPC load generator, forked by bench/grpc.ts and the soak so that the clients' CPU
 * and memory are not the operator's. Driven over IPC; see LoadCommand.
 */
import { randomUUID } from 'node:crypto';
import { Metadata, credentials, type CallOptions, type ServiceError } from '@grpc/grpc-js';
import { RunnerServiceClient } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { START_SHAPES, agentStartRequest, type StartShape } from './shapes.ts';
import { percentilesOf } from './stats.ts';

export type LoadCommand =
  | {
      type: 'start';
      address: string;
      count: number;
      concurrency: number;
      /** Paces the starts at this many per second (default: as fast as the concurrency allows). */
      ratePerSec?: number;
      /** The request (default: the agent). */
      shape?: StartShape;
    }
  | {
      type: 'load';
      address: string;
      method: 'ready' | 'inspect';
      ids: string[];
      concurrency: number;
      /** Connections the callers share (default: one each). */
      channels?: number;
      warmupMs: number;
      durationMs: number;
      /** Also return every measured latency (to merge rounds). */
      raw?: boolean;
    }
  | { type: 'churn'; address: string; ratePerSec: number; lifetimeMs: number; durationMs: number }
  | { type: 'exit' };

export interface StartResult {
  type: 'started';
  ids: string[];
  sendMs: number;
  p50: number;
  p99: number;
  errors: number;
  firstErrors: string[];
}

export interface LoadResult {
  type: 'loaded';
  method: string;
  calls: number;
  errors: number;
  firstErrors: string[];
  seconds: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** CPU of the load generator during the run, as a share of one core. */
  clientCpu: number;
  latencies?: number[];
}

export interface ChurnResult {
  type: 'churned';
  started: number;
  stopped: number;
  removed: number;
  errors: number;
  firstErrors: string[];
}

type Callback<Res> = (err: ServiceError | null, res?: Res) => void;
type UnaryMethod<Req, Res> = (
  req: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Res>,
) => unknown;

function call<Req, Res>(
  client: RunnerServiceClient,
  method: UnaryMethod<Req, Res>,
  req: Req,
  deadlineMs = 60_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, req, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res as Res),
    );
  });
}

/** `count` separate clients (own HTTP/2 connections), as that many independent callers. */
function clients(address: string, count: number): RunnerServiceClient[] {
  return Array.from(
    { length: count },
    () =>
      new RunnerServiceClient(address, credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      }),
  );
}

class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  values(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

function errText(err: unknown): string {
  const e = err as ServiceError;
  return e?.code !== undefined ? `${e.code} ${e.details}` : String(err);
}

async function start(cmd: Extract<LoadCommand, { type: 'start' }>): Promise<StartResult> {
  const cs = clients(cmd.address, cmd.concurrency);
  const ids = Array.from({ length: cmd.count }, () => randomUUID());
  const build = START_SHAPES[cmd.shape ?? 'agent'];
  const requests = ids.map((id) => build(id));
  const lat = new Samples();
  let next = 0;
  let errors = 0;
  const firstErrors: string[] = [];
  const t0 = performance.now();
  await Promise.all(
    cs.map(async (c) => {
      for (;;) {
        const i = next++;
        if (i >= requests.length) return;
        if (cmd.ratePerSec) {
          const wait = t0 + (i * 1000) / cmd.ratePerSec - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        const t = performance.now();
        try {
          await call(c, c.startWorkload, requests[i]!);
          lat.push(performance.now() - t);
        } catch (err) {
          errors++;
          if (firstErrors.length < 5) firstErrors.push(errText(err));
        }
      }
    }),
  );
  const sendMs = performance.now() - t0;
  for (const c of cs) c.close();
  const [p50, p99] = percentilesOf(lat.values(), [50, 99]);
  return { type: 'started', ids, sendMs, p50: p50 ?? NaN, p99: p99 ?? NaN, errors, firstErrors };
}

async function load(cmd: Extract<LoadCommand, { type: 'load' }>): Promise<LoadResult> {
  const channels = clients(
    cmd.address,
    Math.max(1, Math.min(cmd.channels ?? cmd.concurrency, cmd.concurrency)),
  );
  const cs = Array.from({ length: cmd.concurrency }, (_, i) => channels[i % channels.length]!);
  // Connect every client first (the connection handshake is not the RPC's latency).
  await Promise.all(
    channels.map(
      (c) =>
        new Promise<void>((resolve, reject) =>
          c.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())),
        ),
    ),
  );
  const lat = new Samples();
  let errors = 0;
  const firstErrors: string[] = [];
  const t0 = performance.now();
  const measureFrom = t0 + cmd.warmupMs;
  let cpu0 = process.cpuUsage();
  const warm = setTimeout(() => (cpu0 = process.cpuUsage()), cmd.warmupMs);
  const end = measureFrom + cmd.durationMs;
  let k = 0;
  await Promise.all(
    cs.map(async (c) => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          if (cmd.method === 'ready') await call(c, c.ready, {});
          else
            await call(c, c.inspectWorkload, { workloadId: cmd.ids[k++ % cmd.ids.length] ?? '' });
          const done = performance.now();
          if (t >= measureFrom && done <= end) lat.push(done - t);
        } catch (err) {
          if (t >= measureFrom) errors++;
          if (firstErrors.length < 5) firstErrors.push(errText(err));
        }
      }
    }),
  );
  clearTimeout(warm);
  const cpu = process.cpuUsage(cpu0);
  for (const c of channels) c.close();
  const seconds = cmd.durationMs / 1000;
  const [p50, p90, p99, p999, max] = percentilesOf(lat.values(), [50, 90, 99, 99.9, 100]);
  return {
    type: 'loaded',
    method: cmd.method,
    calls: lat.length,
    errors,
    firstErrors,
    seconds,
    rps: lat.length / seconds,
    p50: p50 ?? NaN,
    p90: p90 ?? NaN,
    p99: p99 ?? NaN,
    p999: p999 ?? NaN,
    max: max ?? NaN,
    clientCpu: (cpu.user + cpu.system) / 1000 / cmd.durationMs,
    latencies: cmd.raw ? Array.from(lat.values(), (v) => Math.round(v * 1000) / 1000) : undefined,
  };
}

/**
 * Steady churn: every 1/rate s a workload is started; each lives `lifetimeMs`, is stopped,
 * then its volume is removed (what the orchestrator does). Ends after `durationMs` plus the last lifetimes.
 */
async function churn(cmd: Extract<LoadCommand, { type: 'churn' }>): Promise<ChurnResult> {
  const [c] = clients(cmd.address, 1);
  if (!c) throw new Error('no client');
  const result: ChurnResult = {
    type: 'churned',
    started: 0,
    stopped: 0,
    removed: 0,
    errors: 0,
    firstErrors: [],
  };
  const fail = (err: unknown): void => {
    result.errors++;
    if (result.firstErrors.length < 5) result.firstErrors.push(errText(err));
  };
  const life = async (): Promise<void> => {
    const id = randomUUID();
    try {
      await call(c, c.startWorkload, agentStartRequest(id));
      result.started++;
      await new Promise((r) => setTimeout(r, cmd.lifetimeMs));
      await call(c, c.stopWorkload, { workloadId: id, timeoutSec: 0 });
      result.stopped++;
      // Stop deletes the workload (as upstream); its volume stays until RemoveVolume.
      await call(c, c.removeVolume, { volumeName: `pv-${id}`, force: false });
      result.removed++;
    } catch (err) {
      fail(err);
    }
  };
  const lives: Promise<void>[] = [];
  const intervalMs = 1000 / cmd.ratePerSec;
  const t0 = performance.now();
  for (let i = 0; ; i++) {
    const at = t0 + i * intervalMs;
    if (at - t0 >= cmd.durationMs) break;
    const wait = at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    lives.push(life());
    if (i % 10 === 0)
      process.send?.({
        ...result,
        type: 'churn-progress',
        live: lives.length - result.removed - result.errors,
      });
  }
  await Promise.all(lives);
  c.close();
  return result;
}

/** Sends to the parent unless it is gone (then this process has no reason to live). */
function send(message: unknown): void {
  if (process.connected) process.send?.(message);
}
process.on('disconnect', () => process.exit(0));

process.on('message', (raw) => {
  const cmd = raw as LoadCommand;
  const run = async (): Promise<unknown> => {
    switch (cmd.type) {
      case 'start':
        return start(cmd);
      case 'load':
        return load(cmd);
      case 'churn':
        return churn(cmd);
      case 'exit':
        process.exit(0);
    }
  };
  run().then(
    (res) => send(res),
    (err: unknown) =>
      send({ type: 'error', message: err instanceof Error ? err.stack : String(err) }),
  );
});
send({ type: 'ready' });
