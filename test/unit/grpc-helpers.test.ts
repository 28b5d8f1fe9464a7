import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { Metadata, status } from '@grpc/grpc-js';
import { pino } from 'pino';
import {
  ExecExitReason,
  ExecStartRequest,
  type DeepPartial,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { authProblem, tokenMatches, type AuthOptions } from '../../src/grpc/auth.ts';
import { codeName, mapKubeError } from '../../src/grpc/errors.ts';
import { compileFilters, eventMatches, eventTime, type KubeEvent } from '../../src/grpc/events.ts';
import { ExecStartError, buildExecCommand, exitOutcome } from '../../src/grpc/exec-protocol.ts';
import { TailBuffer } from '../../src/grpc/stream-buffers.ts';
import { logQuery } from '../../src/grpc/logs.ts';
import { execLimiter } from '../../src/grpc/limits.ts';
import {
  ArchiveChecker,
  TarStreamParser,
  archiveProblem,
  listTarEntries,
  type TarEntry,
} from '../../src/grpc/tar.ts';
import { inspectWorkload, rfc3339Nano } from '../../src/grpc/workloads.ts';
import type { Pod, Workload } from '../../src/grpc/caches.ts';
import type { CallContext, ShimContext } from '../../src/grpc/rpc.ts';
import { randomHex } from '../../src/kube/random-ids.ts';
import { RpcError } from '../../src/grpc/errors.ts';
import { StreamWorkloadLogsRequest } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { KubeApiError } from '../../src/kube/errors.ts';

const silent = pino({ level: 'silent' });

describe('mapKubeError (runner-behaviour §2.3)', () => {
  it.each([
    [
      404,
      'NotFound',
      'pods "workload-x" not found',
      status.NOT_FOUND,
      'resource not found: pods "workload-x" not found',
    ],
    [409, 'AlreadyExists', 'exists', status.ALREADY_EXISTS, 'resource already exists: exists'],
    [422, 'Invalid', 'bad', status.INVALID_ARGUMENT, 'invalid kubernetes request: bad'],
    [401, 'Unauthorized', '', status.UNAUTHENTICATED, 'unauthenticated'],
    [403, 'Forbidden', 'no', status.PERMISSION_DENIED, 'permission denied: no'],
    [409, 'Conflict', 'changed', status.ABORTED, 'resource conflict: changed'],
    [400, 'BadRequest', 'creating', status.INTERNAL, 'kubernetes request failed: creating'],
    [504, 'Timeout', 'slow', status.INTERNAL, 'kubernetes request failed: slow'],
    [0, 'NetworkError', 'ECONNREFUSED', status.INTERNAL, 'kubernetes request failed: ECONNREFUSED'],
  ])('%i %s', (code, reason, message, expectedCode, expectedMessage) => {
    const mapped = mapKubeError(new KubeApiError(code, reason, message));
    expect(mapped.code).toBe(expectedCode);
    expect(mapped.message).toBe(expectedMessage);
  });

  it('names codes as Go does for the metrics', () => {
    expect(codeName(status.OK)).toBe('OK');
    expect(codeName(status.NOT_FOUND)).toBe('NotFound');
    expect(codeName(status.CANCELLED)).toBe('Canceled');
  });
});

function tarOf(build: (dir: string) => string[]): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-tar-'));
  try {
    const args = build(dir);
    return execFileSync('tar', ['-cf', '-', ...args], { cwd: dir });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A one-entry ustar archive with whatever name and link the test wants. */
function craftedTar(name: string, type = '0', link = ''): Buffer {
  const header = Buffer.alloc(512);
  header.write(name.slice(0, 100), 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write('00000000000\0', 124);
  header.write('00000000000\0', 136);
  header.write(type, 156);
  header.write(link, 157);
  header.write('ustar\0', 257);
  header.write('00', 263);
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([header, Buffer.alloc(1024)]);
}

describe('tar checks', () => {
  it('lists entries of archives GNU tar writes, long names included', () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}.txt`;
    const archive = tarOf((dir) => {
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'a.txt'), 'hello');
      mkdirSync(join(dir, 'd'.repeat(120)));
      writeFileSync(join(dir, long), 'x');
      symlinkSync('a.txt', join(dir, 'sub', 'link'));
      return ['sub', long];
    });
    const entries = listTarEntries(archive);
    expect(entries.map((e) => e.path).sort()).toEqual(
      ['sub/', 'sub/a.txt', 'sub/link', long].sort(),
    );
    expect(entries.find((e) => e.path === 'sub/link')).toMatchObject({
      type: '2',
      linkPath: 'a.txt',
    });
    expect(archiveProblem(archive)).toBeUndefined();
  });

  it.each([
    ['/etc/passwd', '0', '', 'leaves the target directory'],
    ['../escape', '0', '', 'leaves the target directory'],
    ['a/../../b', '0', '', 'leaves the target directory'],
    ['link', '2', '/etc', 'points outside'],
    ['hard', '1', '../x', 'points outside'],
  ])('refuses %s (type %s → %s)', (name, type, link, problem) => {
    expect(archiveProblem(craftedTar(name, type, link))).toContain(problem);
  });

  it('refuses pax paths that escape and garbage', () => {
    const record = (k: string, v: string): string => {
      const body = ` ${k}=${v}\n`;
      let len = body.length + 1;
      while (`${len}${body}`.length !== len) len++;
      return `${len}${body}`;
    };
    const pax = Buffer.from(record('path', '../../x'));
    const header = craftedTar('PaxHeaders/x', 'x').subarray(0, 512);
    header.write(pax.length.toString(8).padStart(11, '0'), 124);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const data = Buffer.alloc(512);
    pax.copy(data);
    const archive = Buffer.concat([header, data, craftedTar('innocent')]);
    expect(archiveProblem(archive)).toContain('"../../x" leaves the target directory');

    expect(archiveProblem(Buffer.from('not a tar archive at all'.repeat(40)))).toMatch(
      /checksum|truncated/,
    );
    expect(archiveProblem(Buffer.alloc(0))).toBe('empty archive');
    expect(archiveProblem(Buffer.alloc(1024))).toBeUndefined();
  });

  // Issue 13 attack 8: the checker stopped at the first zero block while BusyBox tar reads on.
  it('refuses entries hidden after the end-of-archive marker, and trailing garbage', () => {
    const ok = craftedTar('ok.txt').subarray(0, 512);
    const hidden = craftedTar('escape', '2', '/').subarray(0, 512);
    const smuggled = Buffer.concat([ok, Buffer.alloc(512), hidden, Buffer.alloc(1024)]);
    expect(archiveProblem(smuggled)).toBe('data after the end-of-archive marker at offset 1024');
    const garbage = Buffer.concat([craftedTar('ok.txt'), Buffer.from('trailing')]);
    expect(archiveProblem(garbage)).toMatch(/data after the end-of-archive marker/);
    // Zero padding to the record size (what tar writes) is fine, in any chunking.
    const padded = Buffer.concat([craftedTar('ok.txt'), Buffer.alloc(8704)]);
    expect(archiveProblem(padded)).toBeUndefined();
    const streamed = new ArchiveChecker();
    expect(() => {
      for (let i = 0; i < smuggled.length; i += 7) streamed.push(smuggled.subarray(i, i + 7));
    }).toThrow('data after the end-of-archive marker at offset 1024');
  });

  it('refuses devices, FIFOs and names with control characters', () => {
    expect(archiveProblem(craftedTar('dev', '3'))).toContain('only files, directories and links');
    expect(archiveProblem(craftedTar('fifo', '6'))).toContain('only files, directories and links');
    expect(archiveProblem(craftedTar('a\nb'))).toContain('control character');
  });

  it('parses archives fed in arbitrary chunks like whole ones', () => {
    const archive = tarOf((dir) => {
      writeFileSync(join(dir, 'x'.repeat(150)), 'long name');
      writeFileSync(join(dir, 'big'), Buffer.alloc(5000, 1));
      return ['x'.repeat(150), 'big'];
    });
    const whole = listTarEntries(archive);
    const pieces: TarEntry[] = [];
    const parser = new TarStreamParser((e) => pieces.push(e));
    for (let i = 0; i < archive.length; i += 333) parser.push(archive.subarray(i, i + 333));
    parser.end();
    expect(pieces).toEqual(whole);
    expect(whole.map((e) => e.path)).toEqual(['x'.repeat(150), 'big']);
    expect(() => listTarEntries(archive.subarray(0, 1536))).toThrow('truncated archive');
  });
});

describe('concurrency caps', () => {
  it('refuses beyond the per-workload and the total cap with RESOURCE_EXHAUSTED, naming the setting', () => {
    const limiter = execLimiter({ total: 3, perWorkload: 2 });
    const a1 = limiter.acquire('a');
    limiter.acquire('a');
    const refused = (fn: () => unknown): RpcError => {
      try {
        fn();
      } catch (err) {
        return err as RpcError;
      }
      throw new Error('not refused');
    };
    const perWorkload = refused(() => limiter.acquire('a'));
    expect(perWorkload.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(perWorkload.message).toContain('the limit is 2 (EXEC_MAX_SESSIONS_PER_WORKLOAD)');
    limiter.acquire('b');
    const total = refused(() => limiter.acquire('c'));
    expect(total.message).toContain('the limit is 3 (EXEC_MAX_SESSIONS)');
    a1();
    a1();
    expect(limiter.size).toBe(2);
    expect(() => limiter.acquire('c')).not.toThrow();
  });
});

function start(partial: DeepPartial<ExecStartRequest>): ExecStartRequest {
  return ExecStartRequest.fromPartial({ targetId: 'p', ...partial });
}

describe('exec command construction (§6.2)', () => {
  it('uses argv verbatim and wraps shell, workdir and env', () => {
    expect(buildExecCommand(start({ commandArgv: ['ls', '-l'] }))).toEqual(['ls', '-l']);
    expect(buildExecCommand(start({ commandShell: ' echo hi ' }))).toEqual([
      '/bin/sh',
      '-c',
      'echo hi',
    ]);
    expect(
      buildExecCommand(
        start({
          commandArgv: ['pwd'],
          options: { workdir: '/w', env: [{ name: 'A', value: '1 2' }] },
        }),
      ),
    ).toEqual([
      'env',
      'A=1 2',
      '/bin/sh',
      '-c',
      'cd "$1" && shift && exec "$@"',
      '--',
      '/w',
      'pwd',
    ]);
    expect(buildExecCommand(start({ commandArgv: ['sleep', '9'] }), '/tmp/p.pid')).toEqual([
      '/bin/sh',
      '-c',
      '{ echo $$ >"$0"; } 2>/dev/null; exec "$@"',
      '/tmp/p.pid',
      'sleep',
      '9',
    ]);
  });

  it.each([
    [{}, 'command required'],
    [{ commandShell: '  ' }, 'command required'],
    [{ commandArgv: [''] }, 'command required'],
    [
      { commandArgv: ['a'], commandShell: 'b' },
      'command_argv and command_shell are mutually exclusive',
    ],
    [{ commandArgv: ['a'], options: { env: [{ name: '' }] } }, 'env name required'],
    [{ commandArgv: ['a'], options: { env: [{ name: 'A=B' }] } }, 'invalid env name: A=B'],
  ] as Array<[DeepPartial<ExecStartRequest>, string]>)('refuses %j: %s', (partial, message) => {
    let error: unknown;
    try {
      buildExecCommand(start(partial));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ExecStartError);
    expect((error as ExecStartError).code).toBe('invalid_command');
    expect((error as ExecStartError).message).toBe(message);
    expect((error as ExecStartError).grpcCode).toBe(status.INVALID_ARGUMENT);
  });
});

describe('exec exit outcome (§6.4)', () => {
  const R = ExecExitReason;
  it.each([
    [{ exitCode: 0 }, undefined, 0, R.EXEC_EXIT_REASON_COMPLETED],
    [{ exitCode: 3 }, undefined, 3, R.EXEC_EXIT_REASON_COMPLETED],
    [
      { exitCode: -1, error: 'executable file not found' },
      undefined,
      -1,
      R.EXEC_EXIT_REASON_RUNNER_ERROR,
    ],
    [undefined, undefined, -1, R.EXEC_EXIT_REASON_RUNNER_ERROR],
    [{ exitCode: 0 }, R.EXEC_EXIT_REASON_CANCELLED, 0, R.EXEC_EXIT_REASON_CANCELLED],
    [{ exitCode: 0 }, R.EXEC_EXIT_REASON_TIMEOUT, -1, R.EXEC_EXIT_REASON_TIMEOUT],
    [undefined, R.EXEC_EXIT_REASON_IDLE_TIMEOUT, -1, R.EXEC_EXIT_REASON_IDLE_TIMEOUT],
    [{ exitCode: 137 }, R.EXEC_EXIT_REASON_TIMEOUT, 137, R.EXEC_EXIT_REASON_TIMEOUT],
    [{ exitCode: 2 }, R.EXEC_EXIT_REASON_CANCELLED, 2, R.EXEC_EXIT_REASON_CANCELLED],
    [{ exitCode: -1, error: 'x' }, R.EXEC_EXIT_REASON_CANCELLED, 0, R.EXEC_EXIT_REASON_CANCELLED],
    [{ exitCode: 0 }, R.EXEC_EXIT_REASON_RUNNER_ERROR, -1, R.EXEC_EXIT_REASON_RUNNER_ERROR],
  ])('%j with %s → %i', (result, recorded, exitCode, reason) => {
    expect(exitOutcome(result, recorded)).toEqual({ exitCode, reason });
  });

  it('keeps the last N bytes of output as the tail', () => {
    const tail = new TailBuffer(5);
    tail.push(Buffer.from('abc'));
    tail.push(Buffer.from('defg'));
    tail.push(Buffer.from('h'));
    expect(tail.value().toString()).toBe('defgh');
    expect(new TailBuffer(5).value()).toEqual(Buffer.alloc(0));
  });
});

describe('log options', () => {
  it('prefers tail_lines over tail and since_time over since; keeps timestamps', () => {
    const req = StreamWorkloadLogsRequest.fromPartial({
      follow: true,
      tail: 5,
      tailLines: 7,
      since: 1_700_000_000,
      sinceTime: new Date('2026-01-01T00:00:00Z'),
      timestamps: true,
    });
    expect(logQuery(req, 'main')).toEqual({
      container: 'main',
      follow: true,
      timestamps: true,
      tailLines: 7,
      sinceTime: '2026-01-01T00:00:00.000Z',
    });
    const old = StreamWorkloadLogsRequest.fromPartial({ tail: 5, since: 1_700_000_000 });
    expect(logQuery(old, 'main')).toEqual({
      container: 'main',
      tailLines: 5,
      sinceTime: '2023-11-14T22:13:20.000Z',
    });
  });

  it('refuses an out-of-range since', () => {
    const req = StreamWorkloadLogsRequest.fromPartial({ since: 9e15 });
    expect(() => logQuery(req, 'main')).toThrow(RpcError);
  });
});

describe('event filters', () => {
  const event: KubeEvent = {
    metadata: { name: 'e1', namespace: 'ns' },
    involvedObject: { kind: 'Pod', name: 'workload-1', namespace: 'ns', uid: 'u' },
    reason: 'Started',
    type: 'Normal',
    lastTimestamp: '2026-01-01T00:00:10Z',
    firstTimestamp: '2026-01-01T00:00:00Z',
  };
  const now = new Date('2026-02-01T00:00:00Z');

  it('ANDs filters with values and ignores empty ones', () => {
    const filters = compileFilters([
      { key: 'involvedObject.kind', values: ['Pod', 'AgentWorkload'] },
      { key: 'reason', values: ['Started'] },
      { key: 'whatever', values: [] },
    ]);
    expect(eventMatches(event, filters, 0, now)).toBe(true);
    expect(
      eventMatches(event, compileFilters([{ key: 'type', values: ['Warning'] }]), 0, now),
    ).toBe(false);
  });

  it('refuses an unknown key', () => {
    expect(() => compileFilters([{ key: 'involvedObject.color', values: ['red'] }])).toThrow(
      /invalid_filter_key/,
    );
  });

  it('uses eventTime, then lastTimestamp, then firstTimestamp, then now, and drops events before since', () => {
    expect(eventTime(event, now).toISOString()).toBe('2026-01-01T00:00:10.000Z');
    expect(
      eventTime({ ...event, eventTime: '2026-01-01T00:00:20.123456Z' }, now).toISOString(),
    ).toBe('2026-01-01T00:00:20.123Z');
    expect(eventTime({}, now)).toBe(now);
    const since = Date.parse('2026-01-01T00:00:11Z');
    expect(eventMatches(event, [], since, now)).toBe(false);
    expect(eventMatches(event, [], since - 2000, now)).toBe(true);
  });
});

describe('token authentication', () => {
  const auth: AuthOptions = { mode: 'token', tokens: () => ['secret-1', 'secret-2'] };
  const call = { getAuthContext: () => ({}) };
  const withHeader = (value?: string): Metadata => {
    const md = new Metadata();
    if (value !== undefined) md.set('authorization', value);
    return md;
  };

  it('accepts any configured token with the Bearer scheme', () => {
    expect(authProblem(auth, withHeader('Bearer secret-2'), call, silent)).toBeUndefined();
    expect(authProblem(auth, withHeader('bearer secret-1'), call, silent)).toBeUndefined();
  });

  it('refuses a missing, malformed or wrong token', () => {
    expect(authProblem(auth, withHeader(), call, silent)).toBe('missing bearer token');
    expect(authProblem(auth, withHeader('Basic secret-1'), call, silent)).toBe(
      'missing bearer token',
    );
    expect(authProblem(auth, withHeader('Bearer secret-3'), call, silent)).toBe(
      'invalid bearer token',
    );
    expect(
      authProblem({ mode: 'token', tokens: () => [] }, withHeader('Bearer x'), call, silent),
    ).toBe('invalid bearer token');
    const failing: AuthOptions = {
      mode: 'token',
      tokens: () => {
        throw new Error('no secret');
      },
    };
    expect(authProblem(failing, withHeader('Bearer x'), call, silent)).toBe('invalid bearer token');
  });

  it('never matches an empty configured token', () => {
    expect(tokenMatches('', [''])).toBe(false);
    expect(tokenMatches('a', ['b', 'a'])).toBe(true);
  });

  it('in mTLS mode needs a verified peer certificate', () => {
    const mtls: AuthOptions = { mode: 'mtls', caPem: '', certPem: '', keyPem: '' };
    expect(authProblem(mtls, new Metadata(), call, silent)).toMatch(/client certificate/);
    expect(
      authProblem(
        mtls,
        new Metadata(),
        { getAuthContext: () => ({ sslPeerCertificate: {} as never }) },
        silent,
      ),
    ).toBeUndefined();
  });
});

describe('touched-at', () => {
  it('is RFC 3339 in UTC with nanoseconds', () => {
    expect(rfc3339Nano(new Date('2026-01-02T03:04:05.678Z'))).toBe(
      '2026-01-02T03:04:05.678000000Z',
    );
  });
});

describe('inspectWorkload answers', () => {
  const workload = (rv: string): Workload =>
    ({
      apiVersion: 'agyn.io/v1alpha1',
      kind: 'AgentWorkload',
      metadata: { name: 'workload-w1', namespace: 'ns', uid: 'u1', resourceVersion: rv },
      spec: {
        workloadId: 'w1',
        main: { name: 'main', image: 'img:1' },
        volumes: [],
        sidecars: [],
        initContainers: [],
      },
      status: { phase: 'Starting' },
    }) as unknown as Workload;
  const pod = (rv: string): Pod =>
    ({
      metadata: { name: 'workload-w1', namespace: 'ns', resourceVersion: rv },
      spec: { containers: [{ name: 'main', image: 'img:1' }] },
      status: { phase: 'Pending' },
    }) as Pod;
  const shimWith = (cached: { workload: Workload; pod?: Pod }): ShimContext =>
    ({
      caches: {
        workload: (name: string) => (name === 'workload-w1' ? cached.workload : undefined),
        pod: () => cached.pod,
        workloads: { byIndex: () => [] },
      },
    }) as unknown as ShimContext;

  it('are reused while the cached objects are the same, and rebuilt when either changes', async () => {
    const cached: { workload: Workload; pod?: Pod } = { workload: workload('1'), pod: pod('1') };
    const shim = shimWith(cached);
    const ctx = { signal: new AbortController().signal } as CallContext;
    const first = await inspectWorkload(shim, { workloadId: 'w1' }, ctx);
    expect(await inspectWorkload(shim, { workloadId: 'w1' }, ctx)).toBe(first);
    cached.pod = { ...pod('2'), status: { phase: 'Running' } } as Pod;
    const second = await inspectWorkload(shim, { workloadId: 'w1' }, ctx);
    expect(second).not.toBe(first);
    expect(second.stateStatus).toBe('running');
    cached.workload = {
      ...workload('2'),
      spec: { ...workload('2').spec, stopped: true },
    } as Workload;
    const third = await inspectWorkload(shim, { workloadId: 'w1' }, ctx);
    expect(third).not.toBe(second);
    cached.pod = undefined;
    expect((await inspectWorkload(shim, { workloadId: 'w1' }, ctx)).stateStatus).toBe('starting');
  });

  it("are served from the caches without making the call's abort signal (made only for a lookup)", async () => {
    const shim = shimWith({ workload: workload('1'), pod: pod('1') });
    const ctx = {
      get signal(): AbortSignal {
        throw new Error('the signal was read on a cache hit');
      },
    } as CallContext;
    expect((await inspectWorkload(shim, { workloadId: 'w1' }, ctx)).id).toBe('w1');
  });
});

describe('randomHex', () => {
  it('gives ids of the asked length that do not repeat across pool refills', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const id = randomHex(16);
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      ids.add(id);
    }
    expect(ids.size).toBe(2000);
    expect(randomHex(8)).toMatch(/^[0-9a-f]{16}$/);
  });
});
