import { createGunzip } from 'node:zlib';
import { status } from '@grpc/grpc-js';
import { startExec, type ExecResult, type ExecSession } from '../kube/exec.ts';
import type { PutArchiveRequest, PutArchiveResponse } from '../gen/agynio/api/runner/v1/runner.ts';
import { RpcError, invalidArgument } from './errors.ts';
import { TailBuffer } from './stream-buffers.ts';
import type { CallContext, ShimContext } from './rpc.ts';
import { ArchiveChecker, TarError } from './tar.ts';
import { resolvePod } from './resolve.ts';

const PUT_ARCHIVE_TIMEOUT_MS = 5 * 60_000;
const RAW_CHUNK_BYTES = 64 * 1024;
/** What is kept of the extraction's output for the error message (the container decides its size). */
const OUTPUT_TAIL_BYTES = 16 * 1024;
/** Archive bytes buffered towards the container beyond this wait for the socket. */
const HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Runs in the container with the target directory as $1 and the checked archive on stdin.
 * tar extracts into a fresh directory, where no symbolic link exists that tar could follow
 * (the archive's own links cannot leave it: tar.ts refuses absolute and `..` targets).
 * The result is then moved into the target in pre-order: a directory that already exists
 * is merged into, unless it is a symbolic link, which refuses the archive; a new directory
 * is moved whole; anything else replaces what was there (rm first, so `mv` never follows
 * a link). Only POSIX sh, mktemp -d, find -mindepth and mv: BusyBox has them all.
 */
export const EXTRACT_SCRIPT = [
  'set -eu',
  'cd -- "$1" 2>/dev/null || { echo "$1: Cannot change to the target directory" >&2; exit 1; }',
  'work=$(mktemp -d .agyn-put.XXXXXX)',
  'trap \'rm -rf -- "$work"\' EXIT',
  'mkdir -- "$work/x"',
  'tar -xf - -C "$work/x"',
  '(cd -- "$work/x" && find . -mindepth 1) >"$work/list"',
  'skip=',
  'while IFS= read -r e; do',
  '  case "$e" in "$skip"/*) continue ;; esac',
  '  src="$work/x/$e"',
  '  if [ -d "$src" ] && [ ! -L "$src" ]; then',
  '    if [ -L "$e" ]; then echo "${e#./} is a symbolic link in the target directory" >&2; exit 1; fi',
  '    if [ -d "$e" ]; then continue; fi',
  '    skip=$e',
  '  elif [ -d "$e" ] && [ ! -L "$e" ]; then',
  '    echo "${e#./} is a directory in the target directory" >&2; exit 1',
  '  fi',
  '  rm -f -- "$e"',
  '  mv -- "$src" "$e"',
  'done <"$work/list"',
].join('\n');

function isGzip(payload: Buffer): boolean {
  return payload.length >= 2 && payload[0] === 0x1f && payload[1] === 0x8b;
}

function tooLarge(limit: number): RpcError {
  return new RpcError(
    status.RESOURCE_EXHAUSTED,
    `archive_too_large: the archive expands beyond ${limit} bytes (PUT_ARCHIVE_MAX_BYTES)`,
  );
}

/** The plain tar stream of a payload (gunzipped as it is read), refusing more than `limit` bytes. */
export async function* archiveChunks(payload: Buffer, limit: number): AsyncGenerator<Buffer> {
  if (!isGzip(payload)) {
    if (payload.length > limit) throw tooLarge(limit);
    for (let offset = 0; offset < payload.length; offset += RAW_CHUNK_BYTES) {
      yield payload.subarray(offset, offset + RAW_CHUNK_BYTES);
    }
    return;
  }
  const gunzip = createGunzip();
  gunzip.end(payload);
  let total = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw tooLarge(limit);
      yield chunk;
    }
  } catch (err) {
    if (err instanceof RpcError) throw err;
    throw invalidArgument(
      'invalid_archive',
      `gzip: ${err instanceof Error ? err.message : String(err)}`,
    );
  } finally {
    gunzip.destroy();
  }
}

/** Reads the whole archive once, keeping nothing but the parser's state. */
export async function checkArchive(payload: Buffer, limit: number): Promise<void> {
  const checker = new ArchiveChecker();
  try {
    for await (const chunk of archiveChunks(payload, limit)) checker.push(chunk);
    checker.end();
  } catch (err) {
    if (err instanceof TarError) throw invalidArgument('invalid_archive', err.message);
    throw err;
  }
}

async function sendArchive(session: ExecSession, payload: Buffer, limit: number): Promise<void> {
  for await (const chunk of archiveChunks(payload, limit)) {
    if (session.isClosed) return;
    session.write(chunk);
    await session.bufferedAtMost(HIGH_WATER_BYTES);
  }
  session.endStdin();
}

/** Extracts a tar at `path` in the workload's main container (EXTRACT_SCRIPT). */
export async function putArchive(
  shim: ShimContext,
  req: PutArchiveRequest,
  ctx: CallContext,
): Promise<PutArchiveResponse> {
  const id = req.workloadId.trim();
  const path = req.path.trim();
  if (id === '' || path === '') throw invalidArgument('workload_id_and_path_required');
  const { podName, pod } = await resolvePod(shim, id, ctx);
  const container = pod.spec?.containers[0]?.name;
  if (!container) throw new RpcError(status.INTERNAL, 'pod_missing_containers');

  const release = shim.putArchiveLimiter.acquire(podName);
  try {
    const t = req.tarPayload;
    const payload = Buffer.from(t.buffer, t.byteOffset, t.byteLength);
    await checkArchive(payload, shim.maxArchiveBytes);
    await extract(shim, { podName, container, path, payload }, ctx);
    return {};
  } finally {
    release();
  }
}

async function extract(
  shim: ShimContext,
  target: { podName: string; container: string; path: string; payload: Buffer },
  ctx: CallContext,
): Promise<void> {
  const output = new TailBuffer(OUTPUT_TAIL_BYTES);
  const errors = new TailBuffer(OUTPUT_TAIL_BYTES);
  const session = await startExec(
    shim.kube,
    {
      namespace: shim.namespace,
      pod: target.podName,
      container: target.container,
      command: ['/bin/sh', '-c', EXTRACT_SCRIPT, 'put-archive', target.path],
      stdin: true,
      tty: false,
    },
    { onStdout: (d) => output.push(Buffer.from(d)), onStderr: (d) => errors.push(Buffer.from(d)) },
  );
  const onAbort = (): void => session.close();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    const sent = sendArchive(session, target.payload, shim.maxArchiveBytes).then(
      () => session.result,
      (err: unknown): ExecResult => ({ exitCode: -1, error: String(err) }),
    );
    const result = await Promise.race([
      sent,
      new Promise<ExecResult>((resolve) => {
        timer = setTimeout(
          () => resolve({ exitCode: -1, error: 'timed out' }),
          PUT_ARCHIVE_TIMEOUT_MS,
        );
      }),
    ]);
    if (result.exitCode === 0 && result.error === undefined) return;
    const detail =
      errors.value().toString('utf8').trim() ||
      output.value().toString('utf8').trim() ||
      result.error ||
      `exit code ${result.exitCode}`;
    throw new RpcError(status.INTERNAL, `put archive failed: ${detail}`);
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
    session.close();
  }
}
