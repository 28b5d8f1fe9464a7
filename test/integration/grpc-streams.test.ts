import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import {
  RunnerServiceClient,
  StartWorkloadRequest,
  StreamEventsRequest,
  StreamWorkloadLogsRequest,
  type DeepPartial,
  type StreamEventsResponse,
  type StreamWorkloadLogsResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { EVENTS, PODS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { eventually, simulatedLogFile } from '../support/kube.ts';
import { call, collect, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';

let h: GrpcHarness;
let c: RunnerServiceClient;
const id = randomUUID();
const pod = `workload-${id}`;

beforeAll(async () => {
  h = await startHarness({ prefix: 'grpc-st' });
  c = h.client;
  await call(
    c,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      main: { image: 'a' },
      sidecars: [{ name: 'side', image: 'b' }],
    }),
  );
  await eventually(
    async () => (await call(c, 'inspectWorkload', { workloadId: id })).stateRunning,
    { what: 'Running' },
  );
});

afterAll(async () => {
  await h?.close();
});

function logLine(text: string): void {
  appendFileSync(
    simulatedLogFile(),
    `${new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z')} stdout F ${text}\n`,
  );
}

function logs(partial: DeepPartial<StreamWorkloadLogsRequest>) {
  return c.streamWorkloadLogs(
    StreamWorkloadLogsRequest.fromPartial({ workloadId: id, containerName: 'main', ...partial }),
  );
}

function text(messages: StreamWorkloadLogsResponse[]): string {
  return Buffer.concat(
    messages.map((m) => (m.event?.$case === 'chunk' ? m.event.chunk.data : Buffer.alloc(0))),
  ).toString('utf8');
}

describe('StreamWorkloadLogs', () => {
  test('container_name is required, checked before the workload lookup', async () => {
    const outcome = await collect(logs({ workloadId: 'missing-workload', containerName: '' }));
    expect([outcome.code, outcome.details]).toEqual([
      status.INVALID_ARGUMENT,
      'container_name_required',
    ]);
    const noId = await collect(logs({ workloadId: ' ' }));
    expect([noId.code, noId.details]).toEqual([status.INVALID_ARGUMENT, 'workload_id_required']);
  });

  test('an unknown workload or container is NOT_FOUND', async () => {
    expect((await collect(logs({ workloadId: 'missing-workload' }))).code).toBe(status.NOT_FOUND);
    const unknown = await collect(logs({ containerName: 'nope' }));
    expect([unknown.code, unknown.details]).toEqual([status.NOT_FOUND, 'container_not_found']);
  });

  test('without follow the log is read to its end (tail_lines wins over tail), then OK', async () => {
    const marker = `grpc-logs-${randomUUID()}`;
    logLine(marker);
    const outcome = await collect(logs({ tailLines: 1, tail: 50 }));
    expect(outcome.code).toBe(status.OK);
    expect(text(outcome.messages)).toBe(`${marker}\n`);
    const chunk = outcome.messages[0]?.event;
    expect(chunk?.$case === 'chunk' && chunk.chunk.ts instanceof Date).toBe(true);

    const stamped = await collect(logs({ tailLines: 1, timestamps: true, containerName: 'side' }));
    expect(text(stamped.messages)).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+ ${marker}\\n$`));
  });

  test('follow streams new lines until the client cancels', async () => {
    const stream = logs({ follow: true, tailLines: 1 });
    const outcome = collect(stream);
    const marker = `grpc-follow-${randomUUID()}`;
    const received: string[] = [];
    stream.on('data', (m: StreamWorkloadLogsResponse) => {
      if (m.event?.$case === 'chunk') received.push(m.event.chunk.data.toString());
    });
    await new Promise((r) => setTimeout(r, 300));
    logLine(marker);
    await eventually(() => received.join('').includes(marker), {
      what: 'the followed line',
      timeoutMs: 10_000,
    });
    stream.cancel();
    expect((await outcome).code).toBe(status.CANCELLED);
    expect(await call(c, 'ready', {})).toEqual({ status: 'ok' });
  });

  test('a Pod deleted while streaming ends the stream UNAVAILABLE pod_deleted', async () => {
    const stream = logs({ follow: true, tailLines: 1 });
    const outcome = collect(stream);
    await new Promise((r) => setTimeout(r, 300));
    await h.kube
      .resource<IPod & KubeObject>(PODS)
      .delete(h.ns.name, pod, { gracePeriodSeconds: 0 });
    const result = await outcome;
    expect([result.code, result.details]).toEqual([status.UNAVAILABLE, 'pod_deleted']);
  });
});

describe('StreamEvents', () => {
  test('replays and streams namespace events, filtered', async () => {
    const stream = c.streamEvents(
      StreamEventsRequest.fromPartial({
        filters: [
          { key: 'involvedObject.kind', values: ['AgentWorkload'] },
          { key: 'involvedObject.name', values: [pod] },
          { key: 'reason', values: [] },
        ],
      }),
    );
    const outcome = collect<StreamEventsResponse>(stream);
    const events: Array<{ reason: string; kind: string }> = [];
    stream.on('data', (m: StreamEventsResponse) => {
      if (m.event?.$case !== 'data') return;
      const e = JSON.parse(m.event.data.json) as {
        reason: string;
        involvedObject: { kind: string };
      };
      expect(m.event.data.ts).toBeInstanceOf(Date);
      events.push({ reason: e.reason, kind: e.involvedObject.kind });
    });
    // A Running workload has no Event of the operator's: one recorded about it (Pod events,
    // which kwok records, are filtered out).
    const aw = await h.kube.resource(AGENT_WORKLOADS).get(h.ns.name, pod);
    await h.kube.resource(EVENTS).create(h.ns.name, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${pod}.stream-probe` },
      involvedObject: {
        apiVersion: aw.apiVersion,
        kind: 'AgentWorkload',
        name: pod,
        namespace: h.ns.name,
        uid: aw.metadata?.uid,
      },
      reason: 'StreamProbe',
      message: 'an Event about the workload',
      type: 'Normal',
      firstTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    } as KubeObject);
    await eventually(() => events.some((e) => e.reason === 'StreamProbe'), {
      what: 'the Event about the workload',
    });
    expect(events.every((e) => e.kind === 'AgentWorkload')).toBe(true);
    stream.cancel();
    expect((await outcome).code).toBe(status.CANCELLED);
  });

  test('Pod events come through too; since drops older ones', async () => {
    const stream = c.streamEvents(
      StreamEventsRequest.fromPartial({
        filters: [{ key: 'involvedObject.kind', values: ['Pod'] }],
      }),
    );
    const outcome = collect<StreamEventsResponse>(stream);
    const reasons: string[] = [];
    stream.on('data', (m: StreamEventsResponse) => {
      if (m.event?.$case === 'data')
        reasons.push((JSON.parse(m.event.data.json) as { reason: string }).reason);
    });
    await eventually(() => reasons.includes('Started'), { what: 'a Pod Started event' });
    stream.cancel();
    await outcome;

    const future = c.streamEvents(
      StreamEventsRequest.fromPartial({ since: Math.floor(Date.now() / 1000) + 3600 }),
    );
    const futureOutcome = collect<StreamEventsResponse>(future);
    await new Promise((r) => setTimeout(r, 1000));
    future.cancel();
    expect((await futureOutcome).messages).toEqual([]);
  });

  test('an unknown filter key is INVALID_ARGUMENT', async () => {
    const outcome = await collect(
      c.streamEvents(
        StreamEventsRequest.fromPartial({
          filters: [{ key: 'involvedObject.color', values: ['red'] }],
        }),
      ),
    );
    expect(outcome.code).toBe(status.INVALID_ARGUMENT);
    expect(outcome.details).toMatch(/^invalid_filter_key/);
  });
});
