/**
 * The Go load generator (bench/grpc-load-go): built on first use with the machine's Go
 * toolchain (its module cache and build cache make later builds instant), then run once
 * per measurement with the pre-encoded requests on stdin.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './cluster.ts';
import type { LoadResult } from './grpc-load.ts';

export interface GoLoadOptions {
  address: string;
  /** Full method path, e.g. /agynio.api.runner.v1.RunnerService/Ready. */
  method: string;
  /** Encoded request messages, sent round robin. */
  requests: Uint8Array[];
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Open loop at this total rate; closed loop when absent. */
  rps?: number;
}

/** The Node load generator's figures (same meaning), plus the offered open-loop rate. */
export interface GoLoadResult extends Omit<LoadResult, 'type' | 'method' | 'latencies'> {
  offeredRps: number;
  latencies: number[];
}

let binary: string | undefined;

export function goLoadBinary(): string {
  if (binary) return binary;
  const dir = path.join(os.homedir(), '.cache/k8s-runner/bench');
  mkdirSync(dir, { recursive: true });
  const out = path.join(dir, 'grpc-load');
  execFileSync('go', ['build', '-o', out, '.'], {
    cwd: path.join(ROOT, 'bench/grpc-load-go'),
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  binary = out;
  return out;
}

export function runGoLoad(opts: GoLoadOptions): Promise<GoLoadResult> {
  const args = [
    '-addr',
    opts.address,
    '-method',
    opts.method,
    '-c',
    String(opts.concurrency),
    '-warmup',
    `${Math.round(opts.warmupMs)}ms`,
    '-duration',
    `${Math.round(opts.durationMs)}ms`,
    '-rps',
    String(opts.rps ?? 0),
    '-raw',
  ];
  // One OS thread for the generator: the other core stays the server's, as far as a
  // 2-core machine allows.
  const child = spawn(goLoadBinary(), args, {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, GOMAXPROCS: '1' },
  });
  child.stdin.end(opts.requests.map((r) => Buffer.from(r).toString('base64')).join('\n') + '\n');
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (out += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`grpc-load exited with ${code}`));
      try {
        const result = JSON.parse(out) as GoLoadResult;
        result.latencies ??= [];
        resolve(result);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}
