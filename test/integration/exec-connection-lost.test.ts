import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import {
  ExecExitReason,
  ExecRequest,
  StartWorkloadRequest,
  type ExecResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { loadClusterConnection } from '../../src/kube/kubeconfig.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import { eventually } from '../support/kube.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

// The shim reaches kube-apiserver through a TCP proxy on loopback; cutting the proxy's
// connections drops the exec WebSocket in the middle of a command.
let h: GrpcHarness;
let proxy: TcpProxy;
let shimKube: KubeClient;
const id = randomUUID();

beforeAll(async () => {
  const direct = loadClusterConnection(process.env.KUBECONFIG);
  if (!direct) throw new Error('the test cluster kubeconfig did not load');
  const api = new URL(direct.server);
  proxy = await startTcpProxy({ host: api.hostname, port: Number(api.port) });
  shimKube = new KubeClient({
    server: `https://127.0.0.1:${proxy.port}`,
    requestOptions: () => direct.requestOptions(),
  });
  h = await startHarness({ prefix: 'exec-lost', serverKube: shimKube });
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({ workloadId: id, main: { image: 'a' } }),
  );
  await eventually(
    async () => (await call(h.client, 'inspectWorkload', { workloadId: id })).stateRunning,
    { what: 'Running' },
  );
});

afterAll(async () => {
  await h?.close();
  shimKube?.close();
  await proxy?.close();
});

test('a connection lost mid-command ends in RUNNER_ERROR with -1 (contract §6.4), never COMPLETED', async () => {
  const stream = h.client.exec();
  const events: ExecResponse[] = [];
  let sawOutput!: () => void;
  const output = new Promise<void>((resolve) => (sawOutput = resolve));
  stream.on('data', (e: ExecResponse) => {
    events.push(e);
    if (e.event?.$case === 'stdout') sawOutput();
  });
  stream.on('error', () => {});
  const ended = new Promise<{ code: number; details: string }>((resolve) =>
    stream.on('status', resolve),
  );
  stream.write(
    ExecRequest.fromPartial({
      msg: {
        $case: 'start',
        start: { targetId: `workload-${id}`, commandShell: 'echo running; sleep 30' },
      },
    }),
  );
  await output;
  proxy.cutAll();
  const end = await ended;
  const exit = events.find((e) => e.event?.$case === 'exit');
  expect(exit?.event?.$case === 'exit' && exit.event.exit).toMatchObject({
    exitCode: -1,
    reason: ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR,
  });
  expect(end.code).toBe(status.OK);
});
