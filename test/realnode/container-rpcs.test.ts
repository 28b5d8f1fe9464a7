/**
 * Every contract RPC that touches a container, against real containers on the real node:
 * Exec (cwd, env, stdin EOF, tty resize, exit codes, kill_on_timeout, CancelExecution),
 * StreamWorkloadLogs (tail, since, timestamps, follow ending at the container's exit),
 * PutArchive read back with Exec, and StreamEvents carrying the kubelet's own events.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import {
  ExecExitReason,
  StartWorkloadRequest,
  StreamEventsRequest,
  StreamWorkloadLogsRequest,
  type DeepPartial,
  type StreamEventsResponse,
  type StreamWorkloadLogsResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { call, collect, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import { eventually } from '../support/kube.ts';
import {
  BUSYBOX,
  ExecSession,
  exec,
  realNodeRunner,
  waitForWorkloadPhase,
} from '../support/real-node.ts';

const IDLE = 'trap "exit 0" TERM; sleep 3600 & wait';

let h: GrpcHarness;
const id = randomUUID();
const pod = `workload-${id}`;

beforeAll(async () => {
  h = await startHarness({ prefix: 'rn-rpc', runner: realNodeRunner() });
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      main: {
        name: 'agent',
        image: BUSYBOX,
        workingDir: '/srv',
        env: [{ name: 'ROLE', value: 'reviewer' }],
        cmd: ['sh', '-c', `echo first; echo problem >&2; sleep 2; echo second; ${IDLE}`],
      },
    }),
  );
  await waitForWorkloadPhase(h, id, 'Running');
});

afterAll(async () => {
  await h?.close();
});

/** The processes of the main container (its own PID namespace), as `pid args` lines. */
async function processes(): Promise<string> {
  return (await exec(h.client, { targetId: pod, commandArgv: ['ps', '-o', 'pid,args'] })).stdout;
}

describe('Exec in the real container', () => {
  test('runs in the container: its cwd, env and filesystem, or the requested ones', async () => {
    const own = await exec(h.client, {
      targetId: pod,
      commandShell: 'echo "$ROLE $(pwd) $(hostname)"; tr "\\0" " " < /proc/1/cmdline',
    });
    expect(own.stdout).toMatch(new RegExp(`^reviewer /srv ${pod}\nsh -c echo first; `));
    const asked = await exec(h.client, {
      targetId: pod,
      commandShell: 'echo "$GREETING from $(pwd)"',
      options: { workdir: '/tmp', env: [{ name: 'GREETING', value: 'hi there' }] },
    });
    expect(asked.stdout).toBe('hi there from /tmp\n');
  });

  test('stdin reaches the process and EOF ends it', async () => {
    const out = await exec(h.client, { targetId: pod, commandArgv: ['cat'] }, 'hello world');
    expect(out.stdout).toBe('hello world');
    expect(out.exit).toMatchObject({
      exitCode: 0,
      reason: ExecExitReason.EXEC_EXIT_REASON_COMPLETED,
    });
  });

  test('exit codes and stderr come back', async () => {
    const out = await exec(h.client, {
      targetId: pod,
      commandShell: 'echo out; echo oops >&2; exit 42',
      options: { separateStderr: true },
    });
    expect([out.stdout, out.stderr]).toEqual(['out\n', 'oops\n']);
    expect(out.exit).toMatchObject({
      exitCode: 42,
      reason: ExecExitReason.EXEC_EXIT_REASON_COMPLETED,
    });
  });

  test('a tty gets the size the client sends', async () => {
    const x = new ExecSession(h.client).start({
      targetId: pod,
      commandShell:
        'for i in $(seq 200); do s=$(stty size); [ "$s" = "45 123" ] && break; sleep 0.05; done; echo "$s"; tty',
      options: { tty: true },
    });
    await x.started;
    x.send({ msg: { $case: 'resize', resize: { cols: 123, rows: 45 } } });
    const out = await x.done;
    // busybox stty may complain once before the terminal is ready; the size is what counts.
    expect(out.stdout).toMatch(/(^|\n)45 123\r?\n\/dev\/pts\/\d+/);
  });

  test('kill_on_timeout kills the process in the container', async () => {
    const marker = `${(Math.random() * 1000 + 100).toFixed(3)}`;
    const x = new ExecSession(h.client).start({
      targetId: pod,
      commandShell: `echo started; exec sleep ${marker}`,
      options: { timeoutMs: 3000, killOnTimeout: true },
    });
    await x.stdoutContains('started');
    expect(await processes()).toContain(`sleep ${marker}`);
    const out = await x.done;
    expect(out.exit).toMatchObject({
      reason: ExecExitReason.EXEC_EXIT_REASON_TIMEOUT,
      killed: true,
    });
    await eventually(async () => !(await processes()).includes(`sleep ${marker}`), {
      what: 'the timed-out sleep to be gone from the container',
      timeoutMs: 10_000,
    });
  });

  test('CancelExecution ends a running session', async () => {
    const x = new ExecSession(h.client).start({
      targetId: pod,
      commandShell: 'echo started; exec sleep 30',
    });
    await x.stdoutContains('started');
    const out0 = x.events.find((e) => e.event?.$case === 'started')?.event;
    const executionId = out0?.$case === 'started' ? out0.started.executionId : '';
    expect(await call(h.client, 'cancelExecution', { executionId, force: true })).toEqual({
      cancelled: true,
    });
    const out = await x.done;
    expect(out.exit?.reason).toBe(ExecExitReason.EXEC_EXIT_REASON_CANCELLED);
  });
});

function logs(partial: DeepPartial<StreamWorkloadLogsRequest>, workloadId = id) {
  return h.client.streamWorkloadLogs(
    StreamWorkloadLogsRequest.fromPartial({ workloadId, containerName: 'agent', ...partial }),
  );
}

function logText(messages: StreamWorkloadLogsResponse[]): string {
  return chunks(messages)
    .map((c) => c.text)
    .join('');
}

function chunks(messages: StreamWorkloadLogsResponse[]): Array<{ text: string; ts?: Date }> {
  return messages.flatMap((m) =>
    m.event?.$case === 'chunk'
      ? [{ text: m.event.chunk.data.toString(), ts: m.event.chunk.ts }]
      : [],
  );
}

describe('StreamWorkloadLogs of the real container', () => {
  beforeAll(async () => {
    await eventually(
      async () => chunks((await collect(logs({}))).messages).some((c) => c.text.includes('second')),
      { what: 'the second log line', timeoutMs: 20_000 },
    );
  });

  test('the whole log, both streams, then OK', async () => {
    const outcome = await collect(logs({}));
    expect(outcome.code).toBe(status.OK);
    const lines = logText(outcome.messages).split('\n');
    // stdout and stderr are separate pipes: "first" and "problem" may come in either order.
    expect([...lines.slice(0, 2)].sort()).toEqual(['first', 'problem']);
    expect(lines.slice(2)).toEqual(['second', '']);
  });

  test('tail_lines gives the last lines', async () => {
    expect(logText((await collect(logs({ tailLines: 1 }))).messages)).toBe('second\n');
    const two = logText((await collect(logs({ tailLines: 2 }))).messages).split('\n');
    expect([two.length, two[1], two[2]]).toEqual([3, 'second', '']);
  });

  test('timestamps prefix each line with the kubelet time', async () => {
    const outcome = await collect(logs({ tailLines: 1, timestamps: true }));
    expect(
      chunks(outcome.messages)
        .map((c) => c.text)
        .join(''),
    ).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z second\n$/);
  });

  test('since_time drops the older lines', async () => {
    // The kubelet's own time of each line (chunk.ts is when the shim read the chunk).
    const stamped = logText((await collect(logs({ timestamps: true }))).messages);
    const secondAt = /^(\S+) second$/m.exec(stamped)?.[1];
    expect(secondAt).toBeDefined();
    // The API's sinceTime has whole seconds; the first lines are 2 s older.
    const since = new Date(Math.floor(new Date(secondAt!).getTime() / 1000) * 1000);
    const outcome = await collect(logs({ sinceTime: since }));
    expect(logText(outcome.messages)).toBe('second\n');
  });

  test('follow streams new lines and ends when the container exits', async () => {
    const loggerId = randomUUID();
    await call(
      h.client,
      'startWorkload',
      StartWorkloadRequest.fromPartial({
        workloadId: loggerId,
        main: {
          name: 'agent',
          image: BUSYBOX,
          cmd: ['sh', '-c', 'echo start; while [ ! -f /tmp/stop ]; do sleep 0.2; done; echo bye'],
        },
      }),
    );
    await waitForWorkloadPhase(h, loggerId, 'Running');
    const stream = logs({ follow: true }, loggerId);
    const received: string[] = [];
    stream.on('data', (m: StreamWorkloadLogsResponse) => {
      if (m.event?.$case === 'chunk') received.push(m.event.chunk.data.toString());
    });
    const outcome = collect<StreamWorkloadLogsResponse>(stream);
    await eventually(() => received.join('').includes('start\n'), { what: 'the first line' });
    await exec(h.client, { targetId: `workload-${loggerId}`, commandArgv: ['touch', '/tmp/stop'] });
    const ended = await outcome;
    expect(ended.code).toBe(status.OK);
    expect(received.join('')).toBe('start\nbye\n');
  });
});

describe('PutArchive', () => {
  test('files extracted into the container are read back with Exec, modes kept', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rn-archive-'));
    try {
      mkdirSync(path.join(dir, 'notes'));
      writeFileSync(path.join(dir, 'notes', 'todo.txt'), 'review the PR\n');
      writeFileSync(path.join(dir, 'run.sh'), '#!/bin/sh\necho ran from archive\n');
      chmodSync(path.join(dir, 'run.sh'), 0o750);
      const tar = execFileSync('tar', ['-cf', '-', '-C', dir, 'notes', 'run.sh']);
      await call(h.client, 'putArchive', { workloadId: id, path: '/srv', tarPayload: tar });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const out = await exec(h.client, {
      targetId: pod,
      commandShell: 'cat notes/todo.txt; stat -c %a run.sh; ./run.sh',
    });
    expect(out.stdout).toBe('review the PR\n750\nran from archive\n');
  });
});

describe('StreamEvents', () => {
  test('the kubelet events of the workload Pod come through', async () => {
    const stream = h.client.streamEvents(
      StreamEventsRequest.fromPartial({
        filters: [
          { key: 'involvedObject.kind', values: ['Pod'] },
          { key: 'involvedObject.name', values: [pod] },
        ],
      }),
    );
    const outcome = collect<StreamEventsResponse>(stream);
    const seen: Array<{ reason: string; component: string }> = [];
    stream.on('data', (m: StreamEventsResponse) => {
      if (m.event?.$case !== 'data') return;
      const e = JSON.parse(m.event.data.json) as {
        reason: string;
        source?: { component?: string };
        reportingComponent?: string;
      };
      seen.push({ reason: e.reason, component: e.source?.component ?? e.reportingComponent ?? '' });
    });
    await eventually(
      () => ['Pulled', 'Created', 'Started'].every((r) => seen.some((e) => e.reason === r)),
      { what: 'the kubelet events Pulled, Created, Started', timeoutMs: 20_000 },
    );
    expect(seen.filter((e) => e.reason === 'Started').every((e) => e.component === 'kubelet')).toBe(
      true,
    );
    stream.cancel();
    expect((await outcome).code).toBe(status.CANCELLED);
  });
});
