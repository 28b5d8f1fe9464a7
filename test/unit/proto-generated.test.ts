import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';
import { RunnersGatewayService } from '../../src/gen/agynio/api/gateway/v1/runners.ts';
import {
  ExecExitReason,
  ExecOptions,
  ExecResponse,
  RunnerServiceService,
  StartWorkloadRequest,
  StartWorkloadResponse,
  StreamWorkloadLogsRequest,
  WorkloadStatus as RunnerWorkloadStatus,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import {
  EnrollRunnerResponse,
  ReportWorkloadStateRequest,
  WorkloadStatus as RunnersWorkloadStatus,
} from '../../src/gen/agynio/api/runners/v1/runners.ts';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const genDir = join(root, 'src/gen');

async function readTree(dir: string): Promise<Map<string, string>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = new Map<string, string>();
  for (const entry of entries.filter((e) => e.isFile())) {
    const path = join(entry.parentPath, entry.name);
    files.set(path.slice(dir.length + 1), await readFile(path, 'utf8'));
  }
  return files;
}

const hex = (s: string): Uint8Array => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('generated protobuf code', () => {
  it('is up to date with proto/', async () => {
    const base = await mkdtemp(join(tmpdir(), 'k8s-runner-gen-'));
    try {
      await run('bash', [join(root, 'scripts/generate-proto.sh'), base]);
      const fresh = await readTree(join(base, 'src/gen'));
      const committed = await readTree(genDir);
      expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
      for (const [path, text] of fresh) {
        if (committed.get(path) !== text) {
          throw new Error(`src/gen/${path} is stale: run scripts/generate-proto.sh`);
        }
      }
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  }, 60000);

  it('serves RunnerService with all 17 RPCs and their streaming shapes', () => {
    const shapes = Object.values(RunnerServiceService).map((m) => [
      m.path,
      m.requestStream,
      m.responseStream,
    ]);
    const p = '/agynio.api.runner.v1.RunnerService/';
    expect(shapes).toEqual([
      [`${p}Ready`, false, false],
      [`${p}StartWorkload`, false, false],
      [`${p}StopWorkload`, false, false],
      [`${p}RemoveWorkload`, false, false],
      [`${p}InspectWorkload`, false, false],
      [`${p}GetWorkloadLabels`, false, false],
      [`${p}ListWorkloads`, false, false],
      [`${p}FindWorkloadsByLabels`, false, false],
      [`${p}ListWorkloadsByVolume`, false, false],
      [`${p}ListVolumes`, false, false],
      [`${p}RemoveVolume`, false, false],
      [`${p}TouchWorkload`, false, false],
      [`${p}PutArchive`, false, false],
      [`${p}StreamWorkloadLogs`, false, true],
      [`${p}StreamEvents`, false, true],
      [`${p}Exec`, true, true],
      [`${p}CancelExecution`, false, false],
    ]);
  });

  it('names the gateway methods as the platform does', () => {
    expect(Object.values(RunnersGatewayService).map((m) => m.path)).toEqual([
      '/agynio.api.gateway.v1.RunnersGateway/EnrollRunner',
      '/agynio.api.gateway.v1.RunnersGateway/ReportRunnerCatalog',
      '/agynio.api.gateway.v1.RunnersGateway/ReportWorkloadState',
    ]);
  });

  it('decodes EnrollRunnerResponse fields 1-3', () => {
    expect(EnrollRunnerResponse.decode(hex('0a027b7d 1203737663 1a026964'))).toEqual({
      identityJson: Buffer.from('{}'),
      serviceName: 'svc',
      identityId: 'id',
    });
  });

  it('decodes ReportWorkloadStateRequest with runners.v1 numbering and optional presence', () => {
    const msg = ReportWorkloadStateRequest.decode(
      hex('0a0172 120174 1a0177 2002 2a0440004803 3206 0801 1080897a'),
    );
    expect(msg.runnerId).toBe('r');
    expect(msg.serviceToken).toBe('t');
    expect(msg.workloadId).toBe('w');
    expect(msg.status).toBe(RunnersWorkloadStatus.WORKLOAD_STATUS_RUNNING);
    expect(msg.containers).toHaveLength(1);
    expect(msg.containers[0]?.exitCode).toBe(0);
    expect(msg.containers[0]?.reason).toBeUndefined();
    expect(msg.containers[0]?.restartCount).toBe(3);
    expect(msg.observedAt).toEqual(new Date(1002));
  });

  it('keeps runner.v1 WorkloadStatus numbers apart from runners.v1', () => {
    expect(StartWorkloadResponse.decode(hex('0a0161 1804')).status).toBe(
      RunnerWorkloadStatus.WORKLOAD_STATUS_FAILED,
    );
    expect(RunnerWorkloadStatus.WORKLOAD_STATUS_RUNNING).toBe(1);
    expect(RunnersWorkloadStatus.WORKLOAD_STATUS_RUNNING).toBe(2);
  });

  it('decodes StreamWorkloadLogsRequest including deprecated fields', () => {
    expect(
      StreamWorkloadLogsRequest.decode(hex('0a027731 1807 2005 42046d61696e 480a 1001')),
    ).toMatchObject({
      workloadId: 'w1',
      follow: true,
      since: 7,
      tail: 5,
      containerName: 'main',
      tailLines: 10,
      sinceTime: undefined,
    });
  });

  it('decodes StartWorkloadRequest maps, including field 100', () => {
    const msg = StartWorkloadRequest.decode(hex('a206060a016b120176 52070a022f66120178 42026964'));
    expect(msg.additionalProperties).toEqual({ k: 'v' });
    expect(msg.inlineFiles).toEqual({ '/f': Buffer.from('x') });
    expect(msg.workloadId).toBe('id');
  });

  it('decodes uint64 exec fields as numbers', () => {
    expect(ExecOptions.decode(hex('18e0a712 488008'))).toMatchObject({
      timeoutMs: 300000,
      exitTailBytes: 1024,
    });
  });

  it('decodes the ExecResponse exit event as a union', () => {
    expect(ExecResponse.decode(hex('2204107f2002')).event).toEqual({
      $case: 'exit',
      exit: expect.objectContaining({
        exitCode: 127,
        reason: ExecExitReason.EXEC_EXIT_REASON_TIMEOUT,
      }),
    });
  });
});
