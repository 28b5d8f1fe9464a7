/** bench:grpc's options, targets and result shape (bench/grpc.ts runs it, grpc-report.ts renders it). */
import { DEFAULT_BURST, DEFAULT_QPS } from '../../src/kube/client.ts';
import { DEFAULT_WORKLOAD_WORKERS } from '../../src/workload/controller.ts';
import type { Args } from './args.ts';
import type { ChildMemory } from './child-ipc.ts';
import type { GoLoadResult } from './go-load.ts';
import type { MemoryMax } from './memory-poller.ts';
import { START_SHAPES, type StartShape } from './shapes.ts';
import type { StartComparison } from './start-report.ts';

export interface GrpcBenchOptions {
  /** Each N gets direct, CR floor and shim StartWorkload phases; the Inspect load uses the last. */
  startNs: number[];
  /** Interleaved rounds of those three phases per N; the report gives their medians. */
  startRounds: number;
  startConcurrency: number;
  shape: StartShape;
  concurrency: number;
  /** Measured time per target and mode, split over `rounds` alternating rounds. */
  durationMs: number;
  rounds: number;
  warmupMs: number;
  /** The open-loop rate, in requests/s over all callers. */
  rate: number;
  workers: number;
  qps: number;
  burst: number;
}

/** Issue 15's targets for the unary load and the operator's memory. */
export const GRPC_TARGETS = { inspectP99Ms: 5, inspectRps: 5000, rssPeakMiB: 120, rssAtN: 500 };

/** The unary load's targets, in the order each round runs them. */
export const TARGETS = ['bare', 'bareModules', 'ready', 'inspect'] as const;
export type Target = (typeof TARGETS)[number];
export const MODES = ['closed', 'open'] as const;
export type Mode = (typeof MODES)[number];

export function grpcOptions(args: Args): GrpcBenchOptions {
  return {
    startNs: args
      .string('start-n', '200,500')
      .split(',')
      .map((v) => Number.parseInt(v, 10))
      .filter((v) => v > 0),
    startRounds: Math.max(1, args.int('start-rounds', 3)),
    startConcurrency: args.int('start-c', 16),
    shape: startShape(args.string('start-shape', 'simple')),
    concurrency: args.int('c', 32),
    durationMs: args.durationMs('duration', 10_000),
    rounds: Math.max(1, args.int('rounds', 2)),
    warmupMs: args.durationMs('grpc-warmup', 2_000),
    rate: args.number('rate', GRPC_TARGETS.inspectRps),
    workers: args.int('workers', DEFAULT_WORKLOAD_WORKERS),
    qps: args.number('qps', DEFAULT_QPS),
    burst: args.number('burst', DEFAULT_BURST),
  };
}

function startShape(name: string): StartShape {
  if (!Object.hasOwn(START_SHAPES, name))
    throw new Error(`--start-shape: one of ${Object.keys(START_SHAPES).join(', ')}`);
  return name as StartShape;
}

export interface LoadFigures extends GoLoadResult {
  /** CPU used by the target's process during the run, as a share of one core. */
  serverCpu: number;
  lagP99: number;
  /** req/s of each round, to show the spread. */
  roundRps?: number[];
}

/** The operator process's memory over the run of the last N (its own process: src/main.ts). */
export interface OperatorMemory {
  /** A fresh process on the compiled operator code with its modules loaded (nothing started). */
  modulesLoaded: number;
  /** Started, caches synced on the empty namespace, before the first call. */
  started: ChildMemory;
  /** After the start phase settled: idle with N workloads; then after a full GC. */
  idle: ChildMemory;
  idleAfterGc: ChildMemory;
  /** VmHWM during the start phase, during the unary load, and over the process's whole life. */
  startPeak: number;
  loadPeak: number;
  lifetimePeak: number;
  /** Highest of each figure in samples every 250 ms during the unary load. */
  loadMax: MemoryMax;
  /** The bare grpc-js server process holding the same workloads (floor). */
  bare: FloorMemory;
  /** The same, in a process that first loaded the operator's modules (floor with its packages). */
  bareModules: FloorMemory;
}

/** A floor server's memory: before its load (after GC) and at its peak during it. */
export interface FloorMemory {
  cached: number;
  /** RSS after GC once the operator's modules were loaded, before the objects (bareModules only). */
  modulesRss?: number;
  before: ChildMemory;
  loadPeak: number;
  loadMax: MemoryMax;
}

export interface GrpcBenchResult {
  options: GrpcBenchOptions;
  start: StartComparison[];
  load: Record<Target, Record<Mode, LoadFigures>>;
  memory: OperatorMemory;
}
