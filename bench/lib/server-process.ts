/**
 * A gRPC server of bench:grpc other than the operator, in a process of its own
 * (bench/lib/bench-child.ts) so that its CPU and RSS are its own, configured by
 * BENCH_SERVER (JSON):
 * - `direct`: the direct runner (bench/lib/direct-runner.ts, the Go runner's path);
 * - `bare`: a bare grpc-js server (generated service, every handler answers at once: the
 *   library's floor), optionally holding objects (a JSON file of AgentWorkloads and Pods)
 *   in memory, so that its RSS is the floor for a Node server with the same data. It loads
 *   nothing but grpc-js and the generated service;
 * - `bare-modules`: the same server and objects in a process that first loads what the empty
 *   operator process loads (every module src/main.ts imports, nothing started: no client,
 *   informer or HTTP server; bench/lib/operator-modules.ts), so that its RSS is the floor
 *   for a Node server that carries the operator's packages.
 */
import { readFileSync } from 'node:fs';
import { Server } from '@grpc/grpc-js';
import {
  RunnerServiceService,
  type RunnerServiceServer,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { RunnerSettings } from '../../src/workload/runner-settings.ts';
import { serveParent } from './child-ipc.ts';
import type { DirectMode } from './direct-runner.ts';
import { bindLoopback } from './grpc-bind.ts';
import { importEntryModules, operatorEntryFile } from './operator-modules.ts';

export type ServerProcessConfig =
  | {
      kind: 'direct';
      /** The Go runner's path (default) or the CR design's floor. */
      mode?: DirectMode;
      kubeconfig: string;
      namespace: string;
      qps: number;
      burst: number;
      runner: RunnerSettings;
    }
  /** `objectsFile`: a JSON array the server keeps in memory. */
  | { kind: 'bare' | 'bare-modules'; objectsFile?: string };

/** RSS after full GCs, as the memory probe settles (the child runs with --expose-gc). */
async function rssAfterGc(): Promise<number> {
  const collect = (): void => {
    for (let i = 0; i < 3; i++) globalThis.gc?.();
  };
  collect();
  await new Promise((r) => setTimeout(r, 300));
  collect();
  return process.memoryUsage().rss;
}

async function startBareServer(): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new Server({ 'grpc.enable_channelz': 0 });
  const answer = (_call: unknown, callback: (err: null, value: unknown) => void): void =>
    callback(null, { status: 'ok' });
  const impl = Object.fromEntries(Object.keys(RunnerServiceService).map((name) => [name, answer]));
  server.addService(RunnerServiceService, impl as unknown as RunnerServiceServer);
  const port = await bindLoopback(server);
  return {
    address: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

const config = JSON.parse(process.env.BENCH_SERVER ?? '{}') as ServerProcessConfig;
let cached: unknown[] = [];
if (config.kind === 'direct') {
  // Imported only here: the bare server loads no more than grpc-js, the generated service
  // and the API client.
  const { startDirectRunner } = await import('./direct-runner.ts');
  const direct = await startDirectRunner(config.kubeconfig, config.namespace, config);
  serveParent(
    { counts: () => ({ byResource: [...direct.byResource] }), stop: () => direct.stop() },
    { address: direct.address },
  );
} else {
  let modulesRss: number | undefined;
  if (config.kind === 'bare-modules') {
    await importEntryModules(operatorEntryFile());
    modulesRss = await rssAfterGc();
  }
  if (config.objectsFile)
    cached = JSON.parse(readFileSync(config.objectsFile, 'utf8')) as unknown[];
  const bare = await startBareServer();
  serveParent(
    { stop: () => bare.stop() },
    { address: bare.address, cached: cached.length, modulesRss },
  );
}
process.on('SIGTERM', () => process.exit(0));
