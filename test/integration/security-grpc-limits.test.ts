// Issue 13 (tenant isolation), attacks 6 and 8 against the gRPC shim: each test is the attack,
// asserting it is refused or contained.
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import {
  ExecRequest,
  StartWorkloadRequest,
  type ExecResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { tarArchive } from '../fixtures/bad-input/corpus.ts';
import { gzipBomb } from '../support/archives.ts';
import { call, codeOf, collect, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import { eventually, simulatedExecRoot } from '../support/kube.ts';

const MAX_ARCHIVE_BYTES = 4 * 1024 * 1024;
let h: GrpcHarness;
const ids = [randomUUID(), randomUUID()];

beforeAll(async () => {
  h = await startHarness({
    prefix: 'sec-grpc',
    limits: {
      exec: { total: 3, perWorkload: 2 },
      putArchive: { total: 2, perWorkload: 1 },
      maxArchiveBytes: MAX_ARCHIVE_BYTES,
    },
  });
  for (const workloadId of ids) {
    await call(
      h.client,
      'startWorkload',
      StartWorkloadRequest.fromPartial({ workloadId, main: { image: 'a' } }),
    );
  }
  for (const workloadId of ids) {
    await eventually(
      async () => (await call(h.client, 'inspectWorkload', { workloadId })).stateRunning,
      { what: `${workloadId} Running` },
    );
  }
});

afterAll(async () => {
  await h?.close();
});

function scratch(prefix: string): string {
  return mkdtempSync(join(simulatedExecRoot(), prefix));
}

describe('attack 8: archive check bypass', () => {
  test('an entry smuggled after the end-of-archive marker is refused before anything runs', async () => {
    const target = scratch('smuggle-');
    const outside = scratch('outside-');
    try {
      const ok = tarArchive([{ path: 'ok.txt', content: 'ok' }]).subarray(0, 1024);
      const evil = tarArchive([{ path: 'escape', type: 'symlink', link: outside }]);
      const smuggled = Buffer.concat([ok, Buffer.alloc(512), evil]);
      const refused = await codeOf(
        call(h.client, 'putArchive', { workloadId: ids[0]!, path: target, tarPayload: smuggled }),
      );
      expect(refused).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'invalid_archive: data after the end-of-archive marker at offset 1536',
      });
      expect(existsSync(join(target, 'ok.txt'))).toBe(false);
    } finally {
      rmSync(target, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });

  test('an existing symbolic link in the target is not followed', async () => {
    const target = scratch('links-');
    const outside = scratch('outside-');
    try {
      // What a workload (or an earlier archive) could leave in its own directory.
      symlinkSync(outside, join(target, 'escape'));
      const archive = tarArchive([
        { path: 'escape/pwned', content: 'written through the link' },
        { path: 'fine.txt', content: 'fine' },
      ]);
      const refused = await codeOf(
        call(h.client, 'putArchive', { workloadId: ids[0]!, path: target, tarPayload: archive }),
      );
      expect(refused.code).toBe(status.INTERNAL);
      expect(refused.details).toBe(
        'put archive failed: escape is a symbolic link in the target directory',
      );
      expect(existsSync(join(outside, 'pwned'))).toBe(false);
      expect(lstatSync(join(target, 'escape')).isSymbolicLink()).toBe(true);

      // A link at an entry's own place is replaced, not followed; new directories move whole.
      mkdirSync(join(target, 'kept'));
      await call(h.client, 'putArchive', {
        workloadId: ids[0]!,
        path: target,
        tarPayload: tarArchive([
          { path: 'escape', content: 'replaces the link' },
          { path: 'kept/a', content: 'a' },
          { path: 'new/b', content: 'b' },
        ]),
      });
      expect(lstatSync(join(target, 'escape')).isFile()).toBe(true);
      expect(existsSync(join(target, 'kept', 'a'))).toBe(true);
      expect(existsSync(join(target, 'new', 'b'))).toBe(true);
      expect(existsSync(join(outside, 'pwned'))).toBe(false);
    } finally {
      rmSync(target, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe('attack 6: memory exhaustion through the shim', () => {
  test('a gzip bomb is refused at the decompressed-size limit, naming it', async () => {
    const bomb = await gzipBomb(64 * 1024 * 1024);
    expect(bomb.length).toBeLessThan(256 * 1024);
    const target = scratch('bomb-');
    try {
      expect(
        await codeOf(
          call(h.client, 'putArchive', { workloadId: ids[0]!, path: target, tarPayload: bomb }),
        ),
      ).toEqual({
        code: status.RESOURCE_EXHAUSTED,
        details: `archive_too_large: the archive expands beyond ${MAX_ARCHIVE_BYTES} bytes (PUT_ARCHIVE_MAX_BYTES)`,
      });
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  test('Exec sessions beyond the per-workload and the total cap get RESOURCE_EXHAUSTED', async () => {
    const open = (workloadId: string) => {
      const stream = h.client.exec();
      const done = collect<ExecResponse>(stream);
      const started = new Promise<void>((resolve) =>
        stream.on('data', (e: ExecResponse) => e.event?.$case === 'started' && resolve()),
      );
      stream.write(
        ExecRequest.fromPartial({
          msg: {
            $case: 'start',
            start: { targetId: `workload-${workloadId}`, commandArgv: ['sleep', '30'] },
          },
        }),
      );
      return { stream, done, started };
    };
    const running = [open(ids[0]!), open(ids[0]!)];
    await Promise.all(running.map((s) => s.started));
    const third = await open(ids[0]!).done;
    expect(third.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(third.details).toContain('the limit is 2 (EXEC_MAX_SESSIONS_PER_WORKLOAD)');
    expect(third.messages[0]?.event).toMatchObject({
      $case: 'error',
      error: { code: 'exec_limit_exceeded' },
    });

    const other = open(ids[1]!);
    await other.started;
    running.push(other);
    const overTotal = await open(ids[1]!).done;
    expect(overTotal.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(overTotal.details).toContain('the limit is 3 (EXEC_MAX_SESSIONS)');

    for (const s of running) s.stream.cancel();
    await Promise.all(running.map((s) => s.done));
    // The slots come back: a new session starts.
    await eventually(
      async () => {
        const again = open(ids[0]!);
        const outcome = await Promise.race([
          again.started.then(() => 'started'),
          again.done.then(() => 'refused'),
        ]);
        again.stream.cancel();
        await again.done;
        return outcome === 'started';
      },
      { what: 'a slot to be free again' },
    );
  });
});
