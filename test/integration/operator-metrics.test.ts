import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { credentials, Metadata } from '@grpc/grpc-js';
import { RunnerServiceClient } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { readFileSync } from 'node:fs';
import { REST_CLIENT_DURATION_BUCKETS } from '../../src/observability/rest-client-metrics.ts';
import { duplicateKeys } from '../support/json-keys.ts';
import {
  createTestNamespace,
  eventually,
  readKubeconfigServer,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import {
  createRunner,
  httpGet,
  parseMetrics,
  startOperator,
  waitForRunnerReady,
  type OperatorProcess,
} from '../support/operator-process.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';
import { createWorkload, waitForPhase, workloadManifest } from '../support/workloads.ts';

const client = testKubeClient();
const TOKEN = `svc-token-${randomBytes(6).toString('hex')}`;
const IDENTITY_KEY = `identity-key-${randomBytes(6).toString('hex')}`;

let ns: TestNamespace;
/** The workload namespace: never the operator's. */
let wns: TestNamespace;
let gateway: TestGateway;
let operator: OperatorProcess;
let collector: http.Server;
const exports: Buffer[] = [];

/** A stand-in OTLP/HTTP receiver: keeps every POST /v1/traces body. */
async function startCollector(): Promise<string> {
  collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces') exports.push(Buffer.concat(chunks));
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const address = collector.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'op-metrics');
  wns = await createTestNamespace(client, 'op-metrics-wl');
  gateway = await startTestGateway({
    tokens: {
      [TOKEN]: {
        identityJson: JSON.stringify({ runner_id: 'metrics-runner', key: IDENTITY_KEY }),
        serviceName: 'metrics.agyn',
        identityId: 'metrics-identity',
      },
    },
  });
  await createRunner(client, ns.name, 'local', gateway.url, TOKEN, wns.name);
  operator = await startOperator({
    name: 'metrics',
    env: {
      OPERATOR_NAMESPACE: ns.name,
      WORKLOAD_NAMESPACE: wns.name,
      LEADER_ELECTION: 'false',
      GRPC_AUTH_MODE: 'insecure',
      LOG_LEVEL: 'debug',
      OTEL_EXPORTER_OTLP_ENDPOINT: await startCollector(),
      OTEL_BSP_SCHEDULE_DELAY: '200',
    },
  });
});

afterAll(async () => {
  await operator?.stop();
  await gateway?.stop();
  await new Promise((resolve) => collector?.close(resolve));
  await wns?.cleanup();
  await ns?.cleanup();
  client.close();
});

test('a workload lifecycle and a gRPC call show up in /metrics, the logs and OTLP traces', async () => {
  await waitForRunnerReady(client, ns.name, 'local');
  const aw = await createWorkload(client, wns.name, workloadManifest('obs-1'));
  const running = await waitForPhase(client, wns.name, 'obs-1', 'Running');
  await client.resource(AGENT_WORKLOADS).mergePatch(wns.name, 'obs-1', { spec: { stopped: true } });
  await waitForPhase(client, wns.name, 'obs-1', 'Stopped');

  const grpc = new RunnerServiceClient(
    `127.0.0.1:${operator.grpcPort}`,
    credentials.createInsecure(),
  );
  const traceId = randomBytes(16).toString('hex');
  const metadata = new Metadata();
  metadata.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
  await new Promise<void>((resolve, reject) =>
    grpc.ready({}, metadata, (err) => (err ? reject(err) : resolve())),
  );
  grpc.close();

  const scrape = await httpGet(`${operator.httpUrl}/metrics`);
  expect(scrape.status).toBe(200);
  const samples = parseMetrics(scrape.body);
  const names = new Set(samples.map((s) => s.name));
  for (const name of [
    'controller_runtime_reconcile_total',
    'controller_runtime_reconcile_errors_total',
    'controller_runtime_reconcile_time_seconds_bucket',
    'controller_runtime_reconcile_time_seconds_count',
    'workqueue_depth',
    'workqueue_adds_total',
    'workqueue_queue_duration_seconds_bucket',
    'workqueue_retries_total',
    'k8s_runner_workloads',
    'k8s_runner_runner_enrolled',
    'grpc_server_handled_total',
    'grpc_server_handling_seconds_bucket',
  ]) {
    expect({ name, present: names.has(name) }).toEqual({ name, present: true });
  }
  const value = (name: string, labels: Record<string, string>): number | undefined =>
    samples.find(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    )?.value;

  expect(
    value('controller_runtime_reconcile_total', { controller: 'agentworkload', result: 'success' }),
  ).toBeGreaterThan(0);
  expect(
    value('controller_runtime_reconcile_total', { controller: 'runner', result: 'success' }),
  ).toBeGreaterThan(0);
  expect(
    value('controller_runtime_reconcile_time_seconds_count', { controller: 'agentworkload' }),
  ).toBeGreaterThan(0);
  expect(value('workqueue_adds_total', { name: 'agentworkload' })).toBeGreaterThan(0);
  expect(value('workqueue_depth', { name: 'agentworkload' })).toBeGreaterThanOrEqual(0);
  expect(value('k8s_runner_workloads', { phase: 'Stopped', reason: '' })).toBe(1);
  expect(value('k8s_runner_workloads', { phase: 'Running', reason: '' })).toBe(0);
  expect(value('k8s_runner_runner_enrolled', { runner: 'local' })).toBe(1);
  expect(
    value('grpc_server_handled_total', {
      grpc_service: 'agynio.api.runner.v1.RunnerService',
      grpc_method: 'Ready',
      grpc_code: 'OK',
    }),
  ).toBe(1);

  // Logs: the Pod creation names the workload id and the runner; the RPC carries the caller's trace.
  const created = operator.logs().find((l) => l.msg === 'created Pod' && l.pod === 'obs-1');
  expect(created).toMatchObject({
    workloadId: aw.metadata.uid,
    runner: 'local',
    workload: `${wns.name}/obs-1`,
  });
  expect(running.status?.runner).toBe('local');
  const rpcLine = await operator.waitForLog(
    (l) => l.msg === 'rpc handled' && l.rpc === 'Ready',
    'rpc log line',
  );
  expect(rpcLine).toMatchObject({ code: 'OK', traceId });
  const rawLog = operator
    .logs()
    .map((l) => JSON.stringify(l))
    .join('\n');
  expect(rawLog).not.toContain(TOKEN);
  expect(rawLog).not.toContain(IDENTITY_KEY);

  // Every log line is one JSON object with each key once (pino appends child bindings).
  const rawLines = readFileSync(operator.logFile, 'utf8').split('\n').filter(Boolean);
  expect(rawLines.length).toBeGreaterThan(10);
  expect(rawLines.filter((l) => duplicateKeys(l).length > 0)).toEqual([]);

  // client-go's API client metrics, from the operator's own client.
  const host = new URL(readKubeconfigServer()).host;
  expect(value('rest_client_requests_total', { code: '200', method: 'GET', host })).toBeGreaterThan(
    0,
  );
  expect(
    value('rest_client_requests_total', { code: '201', method: 'POST', host }),
  ).toBeGreaterThan(0);
  expect(value('rest_client_requests_total', { method: 'PATCH', host })).toBeGreaterThan(0);
  expect(
    value('rest_client_request_duration_seconds_count', { verb: 'GET', host }),
  ).toBeGreaterThan(0);
  const buckets = samples
    .filter((s) => s.name === 'rest_client_request_duration_seconds_bucket')
    .filter((s) => s.labels.verb === 'GET' && s.labels.host === host)
    .map((s) => s.labels.le);
  expect(buckets).toEqual([...REST_CLIENT_DURATION_BUCKETS.map(String), '+Inf']);

  // OTLP/HTTP protobuf: span names are plain strings and trace ids raw bytes in the payload.
  const exported = await eventually(
    () => {
      const all = Buffer.concat(exports);
      const wanted = [
        'agynio.api.runner.v1.RunnerService/Ready',
        'workload.start',
        'workload.run',
        'workload.stop',
      ];
      return wanted.every((w) => all.includes(w)) && all.includes(Buffer.from(traceId, 'hex'))
        ? all
        : undefined;
    },
    { timeoutMs: 10_000, what: 'spans exported over OTLP' },
  );
  expect(exported.includes(aw.metadata.uid ?? '-')).toBe(true);
});
