import { Server, status, type ServiceError } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import {
  RunnerServiceService,
  WorkloadStatus,
  type RunnerServiceServer,
  type StartWorkloadRequest,
  type StartWorkloadResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { Secret } from '../../src/grpc/translate-secrets.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { PODS, PVCS, SECRETS } from '../../src/kube/resources.ts';
import type { RunnerSettings } from '../../src/workload/runner-settings.ts';
import { crFloor } from './cr-floor.ts';
import { operatorClient } from './operator.ts';
import { rawObjectsForStart } from './shapes.ts';
import { bindLoopback } from './grpc-bind.ts';

type Pod = IPod & KubeObject;
type Pvc = IPersistentVolumeClaim & KubeObject;

/** `go`: the Go runner's path; `cr`: the CR design's floor (bench/lib/cr-floor.ts). */
export type DirectMode = 'go' | 'cr';

export interface DirectRunner {
  address: string;
  byResource: Map<string, number>;
  stop(): Promise<void>;
}

/**
 * What the platform's Go runner does per StartWorkload (runner-behaviour §3.2), as a grpc-js
 * server in this process: a pull Secret when the request has credentials, each named
 * volume's PVC (GET, then POST when missing), the Pod POST, and STARTING at once. It builds
 * the Pod with the operator's own translation and builder and has its own API client with
 * the operator's budget: the floor the shim's StartWorkload is measured against.
 */
export async function startDirectRunner(
  kubeconfig: string,
  namespace: string,
  options: { qps: number; burst: number; runner: RunnerSettings; mode?: DirectMode },
): Promise<DirectRunner> {
  const { client, byResource } = operatorClient(kubeconfig, {
    qps: options.qps,
    burst: options.burst,
  });
  const goStart = async (req: StartWorkloadRequest): Promise<StartWorkloadResponse> => {
    const { secrets, pvcs, pod } = rawObjectsForStart(req, namespace, options.runner);
    for (const secret of secrets) await client.resource<Secret>(SECRETS).create(namespace, secret);
    for (const pvc of pvcs) {
      const name = pvc.metadata?.name ?? '';
      try {
        await client.resource<Pvc>(PVCS).get(namespace, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await client.resource<Pvc>(PVCS).create(namespace, pvc as Pvc);
      }
    }
    const created = await client.resource<Pod>(PODS).create(namespace, pod as Pod);
    return {
      id: created.metadata?.labels?.['agyn.io/workload-id'] ?? '',
      containers: { main: created.metadata?.name ?? '', sidecars: [] },
      status: WorkloadStatus.WORKLOAD_STATUS_STARTING,
    };
  };
  const start = options.mode === 'cr' ? crFloor(client, namespace, options.runner).start : goStart;
  const server = new Server({ 'grpc.enable_channelz': 0 });
  const unimplemented = (_call: unknown, callback: (err: Partial<ServiceError>) => void): void =>
    callback({ code: status.UNIMPLEMENTED, details: 'direct runner: StartWorkload only' });
  const impl: Record<string, unknown> = Object.fromEntries(
    Object.keys(RunnerServiceService).map((name) => [name, unimplemented]),
  );
  impl.startWorkload = (
    call: { request: StartWorkloadRequest },
    callback: (err: Partial<ServiceError> | null, res?: StartWorkloadResponse) => void,
  ): void => {
    start(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => callback({ code: status.INTERNAL, details: String(err) }),
    );
  };
  server.addService(RunnerServiceService, impl as unknown as RunnerServiceServer);
  const port = await bindLoopback(server);
  return {
    address: `127.0.0.1:${port}`,
    byResource,
    async stop() {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      client.close();
    },
  };
}
