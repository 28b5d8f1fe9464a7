import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ClientDuplexStream } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import {
  ExecExitReason,
  ExecRequest,
  RunnerServiceClient,
  StartWorkloadRequest,
  type DeepPartial,
  type ExecExit,
  type ExecResponse,
  type ExecStartRequest,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { PODS } from '../../src/kube/resources.ts';
import { eventually, simulatedExecRoot } from '../support/kube.ts';
import { call, codeOf, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';

let h: GrpcHarness;
let c: RunnerServiceClient;
const id = randomUUID();
const pod = `workload-${id}`;

beforeAll(async () => {
  h = await startHarness({ prefix: 'grpc-ex' });
  c = h.client;
  await call(
    c,
    'startWorkload',
    StartWorkloadRequest.fromPartial({ workloadId: id, main: { image: 'a' } }),
  );
  await eventually(
    async () => (await call(c, 'inspectWorkload', { workloadId: id })).stateRunning,
    { what: 'Running' },
  );
});

afterAll(async () => {
  await h?.close();
});

interface ExecOutcome {
  events: ExecResponse[];
  code: number;
  details: string;
  stdout: string;
  stderr: string;
  exit?: ExecExit;
  executionId?: string;
}

class ExecClient {
  readonly stream: ClientDuplexStream<ExecRequest, ExecResponse>;
  readonly events: ExecResponse[] = [];
  readonly done: Promise<ExecOutcome>;
  private started?: () => void;
  readonly startedEvent = new Promise<void>((resolve) => (this.started = resolve));

  constructor() {
    this.stream = c.exec();
    this.stream.on('data', (e: ExecResponse) => {
      this.events.push(e);
      if (e.event?.$case === 'started') this.started?.();
    });
    this.stream.on('error', () => {});
    this.done = new Promise((resolve) => {
      this.stream.on('status', (s: { code: number; details: string }) =>
        setImmediate(() => {
          const pick = (which: 'stdout' | 'stderr') =>
            Buffer.concat(
              this.events.flatMap((e) => {
                if (e.event?.$case === 'stdout' && which === 'stdout') return [e.event.stdout.data];
                if (e.event?.$case === 'stderr' && which === 'stderr') return [e.event.stderr.data];
                return [];
              }),
            ).toString();
          const exit = this.events.find((e) => e.event?.$case === 'exit');
          const started = this.events.find((e) => e.event?.$case === 'started');
          resolve({
            events: this.events,
            code: s.code,
            details: s.details,
            stdout: pick('stdout'),
            stderr: pick('stderr'),
            exit: exit?.event?.$case === 'exit' ? exit.event.exit : undefined,
            executionId:
              started?.event?.$case === 'started' ? started.event.started.executionId : undefined,
          });
        }),
      );
    });
  }

  send(msg: DeepPartial<ExecRequest>): this {
    this.stream.write(ExecRequest.fromPartial(msg));
    return this;
  }

  start(start: DeepPartial<ExecStartRequest>): this {
    return this.send({ msg: { $case: 'start', start: { targetId: pod, ...start } } });
  }

  stdin(data: string, eof = false): this {
    return this.send({ msg: { $case: 'stdin', stdin: { data: Buffer.from(data), eof } } });
  }
}

describe('Exec', () => {
  test('argv with stdin and EOF: started with an id, output, exit COMPLETED 0 with the tail', async () => {
    const x = new ExecClient()
      .start({ commandArgv: ['cat'] })
      .stdin('hello ')
      .stdin('world', true);
    const out = await x.done;
    expect(out.code).toBe(status.OK);
    expect(out.events[0]?.event?.$case).toBe('started');
    expect(out.executionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.stdout).toBe('hello world');
    expect(out.exit).toMatchObject({
      executionId: out.executionId,
      exitCode: 0,
      killed: false,
      reason: ExecExitReason.EXEC_EXIT_REASON_COMPLETED,
    });
    expect(out.exit?.stdoutTail.toString()).toBe('hello world');
    expect(out.events.at(-1)?.event?.$case).toBe('exit');
    const seqs = out.events.flatMap((e) =>
      e.event?.$case === 'stdout' ? [e.event.stdout.seq] : [],
    );
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });

  test('shell, workdir and env; stderr separate without options, exit code carried', async () => {
    const x = new ExecClient().start({
      commandShell: 'echo "$GREETING from $(pwd)"; echo oops >&2; exit 3',
    });
    const plain = await x.done;
    expect(plain.exit?.exitCode).toBe(3);
    expect(plain.exit?.reason).toBe(ExecExitReason.EXEC_EXIT_REASON_COMPLETED);
    expect(plain.stderr).toBe('oops\n');
    expect(plain.exit?.stderrTail.toString()).toBe('oops\n');

    const dir = mkdtempSync(join(simulatedExecRoot(), 'wd-'));
    try {
      const y = new ExecClient().start({
        commandShell: 'echo "$GREETING from $(pwd)"; echo oops >&2',
        options: { workdir: dir, env: [{ name: 'GREETING', value: 'hi there' }], exitTailBytes: 4 },
      });
      const merged = await y.done;
      // options present, separate_stderr unset → merged into stdout (upstream's default).
      expect(merged.stderr).toBe('');
      expect(merged.stdout).toContain(`hi there from ${dir}\n`);
      expect(merged.stdout).toContain('oops\n');
      expect(merged.exit?.stdoutTail.length).toBe(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    const z = new ExecClient().start({
      commandShell: 'echo out; echo err >&2',
      options: { separateStderr: true },
    });
    const separate = await z.done;
    expect([separate.stdout, separate.stderr]).toEqual(['out\n', 'err\n']);
  });

  test('tty with resize', async () => {
    const x = new ExecClient().start({
      // Waits for the resize however late it arrives on a loaded machine.
      commandShell:
        'for i in $(seq 100); do s=$(stty size); [ "$s" = "45 123" ] && break; sleep 0.05; done; echo "$s"',
      options: { tty: true },
    });
    await x.startedEvent;
    x.send({ msg: { $case: 'resize', resize: { cols: 0, rows: 10 } } });
    x.send({ msg: { $case: 'resize', resize: { cols: 123, rows: 45 } } });
    const out = await x.done;
    expect(out.stdout).toContain('45 123');
    expect(out.exit?.reason).toBe(ExecExitReason.EXEC_EXIT_REASON_COMPLETED);
  });

  test('wall timeout and idle timeout end the session with their reason and -1', async () => {
    const timeout = await new ExecClient().start({
      commandArgv: ['sleep', '5'],
      options: { timeoutMs: 300 },
    }).done;
    expect(timeout.exit).toMatchObject({
      reason: ExecExitReason.EXEC_EXIT_REASON_TIMEOUT,
      exitCode: -1,
      killed: false,
    });

    const idle = await new ExecClient().start({
      commandShell: 'echo tick; sleep 5',
      options: { idleTimeoutMs: 400 },
    }).done;
    expect(idle.exit).toMatchObject({
      reason: ExecExitReason.EXEC_EXIT_REASON_IDLE_TIMEOUT,
      exitCode: -1,
    });
    expect(idle.stdout).toBe('tick\n');
  });

  test('kill_on_timeout really kills the process', async () => {
    const marker = `${20 + Math.random()}`.slice(0, 12);
    const running = (): boolean => {
      try {
        return (
          execFileSync('pgrep', ['-f', `sleep ${marker}`])
            .toString()
            .trim() !== ''
        );
      } catch {
        return false;
      }
    };
    const x = new ExecClient().start({
      commandArgv: ['sleep', marker],
      options: { timeoutMs: 500, killOnTimeout: true },
    });
    await eventually(running, { what: 'the sleep to run', timeoutMs: 5_000 });
    const out = await x.done;
    expect(out.exit).toMatchObject({
      reason: ExecExitReason.EXEC_EXIT_REASON_TIMEOUT,
      killed: true,
    });
    await eventually(() => !running(), { what: 'the sleep to be killed', timeoutMs: 3_000 });
  });

  test('CancelExecution stops a running session: exit CANCELLED 0', async () => {
    const x = new ExecClient().start({ commandArgv: ['sleep', '5'] });
    await x.startedEvent;
    const started = x.events[0]?.event;
    const executionId = started?.$case === 'started' ? started.started.executionId : '';
    expect(await call(c, 'cancelExecution', { executionId, force: false })).toEqual({
      cancelled: true,
    });
    const out = await x.done;
    expect(out.exit).toMatchObject({
      executionId,
      reason: ExecExitReason.EXEC_EXIT_REASON_CANCELLED,
      exitCode: 0,
      killed: false,
    });
    expect(await call(c, 'cancelExecution', { executionId, force: true })).toEqual({
      cancelled: false,
    });
    expect(await codeOf(call(c, 'cancelExecution', { executionId: ' ', force: false }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'execution_id_required',
    });
  });

  test('half-close before the exit cancels the session (upstream behaviour)', async () => {
    const x = new ExecClient().start({ commandArgv: ['sleep', '5'] });
    await x.startedEvent;
    x.stream.end();
    const out = await x.done;
    expect(out.exit?.reason).toBe(ExecExitReason.EXEC_EXIT_REASON_CANCELLED);
  });

  test('a client that goes away cancels the session and unregisters it', async () => {
    const x = new ExecClient().start({ commandArgv: ['sleep', '5'] });
    await x.startedEvent;
    const started = x.events[0]?.event;
    const executionId = started?.$case === 'started' ? started.started.executionId : '';
    x.stream.cancel();
    expect((await x.done).code).toBe(status.CANCELLED);
    await eventually(
      async () => !(await call(c, 'cancelExecution', { executionId, force: false })).cancelled,
      {
        what: 'the session to be unregistered',
      },
    );
  });

  test('a missing executable ends with RUNNER_ERROR -1 after started', async () => {
    const out = await new ExecClient().start({ commandArgv: ['no-such-binary-xyz'] }).done;
    expect(out.events[0]?.event?.$case).toBe('started');
    expect(out.exit).toMatchObject({
      reason: ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR,
      exitCode: -1,
    });
  });

  test('a second start is refused in-band and the session goes on', async () => {
    const x = new ExecClient().start({ commandArgv: ['cat'] });
    await x.startedEvent;
    x.start({ commandArgv: ['true'] }).stdin('x', true);
    const out = await x.done;
    expect(
      out.events.some(
        (e) => e.event?.$case === 'error' && e.event.error.code === 'exec_already_started',
      ),
    ).toBe(true);
    expect(out.stdout).toBe('x');
  });

  test.each([
    [
      'first message not start',
      (x: ExecClient) => x.stdin('x'),
      'exec_start_required',
      status.INVALID_ARGUMENT,
    ],
    [
      'blank target',
      (x: ExecClient) => x.start({ targetId: ' ', commandArgv: ['true'] }),
      'target_id_required',
      status.INVALID_ARGUMENT,
    ],
    ['no command', (x: ExecClient) => x.start({}), 'invalid_command', status.INVALID_ARGUMENT],
    [
      'argv and shell',
      (x: ExecClient) => x.start({ commandArgv: ['true'], commandShell: 'true' }),
      'invalid_command',
      status.INVALID_ARGUMENT,
    ],
    [
      'unknown pod',
      (x: ExecClient) => x.start({ targetId: 'workload-missing', commandArgv: ['true'] }),
      'exec_start_failed',
      status.NOT_FOUND,
    ],
  ])('%s: one in-band error, no started, then the status', async (_name, send, code, grpcCode) => {
    const out = await send(new ExecClient()).done;
    expect(out.events).toHaveLength(1);
    expect(out.events[0]?.event).toEqual({
      $case: 'error',
      error: expect.objectContaining({ code, retryable: false }),
    });
    expect(out.code).toBe(grpcCode);
    expect(out.details.startsWith(code)).toBe(true);
  });

  test('a stream closed before any message ends OK', async () => {
    const x = new ExecClient();
    x.stream.end();
    const out = await x.done;
    expect([out.code, out.events]).toEqual([status.OK, []]);
  });

  test('only workload Pods can be exec’d into', async () => {
    await h.kube.resource<IPod & KubeObject>(PODS).create(h.ns.name, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'foreign' },
      spec: { containers: [{ name: 'c', image: 'x' }] },
    } as IPod & KubeObject);
    const out = await new ExecClient().start({ targetId: 'foreign', commandArgv: ['true'] }).done;
    expect(out.code).toBe(status.PERMISSION_DENIED);
    expect(out.events[0]?.event?.$case).toBe('error');
  });
});

function tarOf(files: Record<string, string>): Buffer {
  const dir = mkdtempSync(join(simulatedExecRoot(), 'src-'));
  try {
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), content);
    }
    return execFileSync('tar', ['-cf', '-', ...Object.keys(files)], { cwd: dir });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('PutArchive', () => {
  test('extracts the archive at path in the main container', async () => {
    const target = mkdtempSync(join(simulatedExecRoot(), 'put-'));
    try {
      await call(c, 'putArchive', {
        workloadId: id,
        path: target,
        tarPayload: tarOf({ 'a/b.txt': 'bee', 'c.txt': 'sea' }),
      });
      expect(readFileSync(join(target, 'a/b.txt'), 'utf8')).toBe('bee');
      expect(readFileSync(join(target, 'c.txt'), 'utf8')).toBe('sea');

      const gz = execFileSync('gzip', ['-c'], { input: tarOf({ 'z.txt': 'zed' }) });
      await call(c, 'putArchive', { workloadId: id, path: target, tarPayload: gz });
      expect(readFileSync(join(target, 'z.txt'), 'utf8')).toBe('zed');
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  test('refuses entries that leave the target directory, before running anything', async () => {
    const target = mkdtempSync(join(simulatedExecRoot(), 'put-'));
    try {
      const header = Buffer.alloc(512);
      header.write('../escaped.txt', 0);
      header.write('0000644\0', 100);
      header.write('00000000000\0', 124);
      header.write('0', 156);
      header.write('ustar\0', 257);
      header.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of header) sum += b;
      header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
      const { code, details } = await codeOf(
        call(c, 'putArchive', {
          workloadId: id,
          path: target,
          tarPayload: Buffer.concat([header, Buffer.alloc(1024)]),
        }),
      );
      expect(code).toBe(status.INVALID_ARGUMENT);
      expect(details).toContain('leaves the target directory');
      expect(existsSync(join(target, '..', 'escaped.txt'))).toBe(false);
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  test('errors: blank fields, unknown workload, tar failure', async () => {
    expect(
      await codeOf(
        call(c, 'putArchive', { workloadId: id, path: ' ', tarPayload: Buffer.alloc(1024) }),
      ),
    ).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'workload_id_and_path_required',
    });
    expect(
      (
        await codeOf(
          call(c, 'putArchive', {
            workloadId: 'missing-workload',
            path: '/x',
            tarPayload: Buffer.alloc(1024),
          }),
        )
      ).code,
    ).toBe(status.NOT_FOUND);
    const missing = await codeOf(
      call(c, 'putArchive', {
        workloadId: id,
        path: join(simulatedExecRoot(), `nope-${randomUUID()}`),
        tarPayload: tarOf({ f: 'x' }),
      }),
    );
    expect(missing.code).toBe(status.INTERNAL);
    expect(missing.details).toMatch(/^put archive failed: .*(No such file|Cannot)/);
  });
});
