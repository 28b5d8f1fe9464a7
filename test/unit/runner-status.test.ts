import { describe, expect, it } from '@jest/globals';
import type { RunnerStatus } from '../../src/api/runner.ts';
import {
  GatewayError,
  type GatewayErrorCode,
  type GatewayMethod,
} from '../../src/runner/gateway-client.ts';
import {
  backoffMs,
  classifyGatewayError,
  desiredRunnerStatus,
  formatDuration,
  isRunnerReady,
  runnerStatusPatch,
  type RunnerFacts,
} from '../../src/runner/runner-status.ts';

describe('backoffMs', () => {
  const options = { initialMs: 1_000, maxMs: 300_000 };
  it('doubles from the initial delay up to the cap', () => {
    expect([0, 1, 2, 3, 4].map((n) => backoffMs(n, options))).toEqual([
      0, 1_000, 2_000, 4_000, 8_000,
    ]);
    expect(backoffMs(9, options)).toBe(256_000);
    expect(backoffMs(10, options)).toBe(300_000);
    expect(backoffMs(10_000, options)).toBe(300_000);
  });
  it('formats delays for messages', () => {
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(4_000)).toBe('4s');
    expect(formatDuration(300_000)).toBe('5m');
  });
});

describe('classifyGatewayError', () => {
  const err = (method: GatewayMethod, code: GatewayErrorCode, details = 'd') =>
    new GatewayError(method, code, details);
  it.each<[GatewayErrorCode, string]>([
    ['INVALID_ARGUMENT', 'TokenEmpty'],
    ['NOT_FOUND', 'TokenRejected'],
    ['UNAUTHENTICATED', 'TokenRejected'],
    ['PERMISSION_DENIED', 'TokenRejected'],
    ['INTERNAL', 'PlatformError'],
    ['UNKNOWN', 'PlatformError'],
    ['UNAVAILABLE', 'GatewayUnreachable'],
    ['DEADLINE_EXCEEDED', 'GatewayUnreachable'],
    ['MALFORMED_RESPONSE', 'MalformedResponse'],
  ])('EnrollRunner %s → %s', (code, reason) => {
    const c = classifyGatewayError(err('EnrollRunner', code));
    expect(c.reason).toBe(reason);
    expect(c.message).toContain(code);
    expect(c.identityRejected).toBe(false);
  });

  it('treats a refused report as a rejected identity, not a rejected token', () => {
    for (const code of ['NOT_FOUND', 'UNAUTHENTICATED', 'PERMISSION_DENIED'] as const) {
      expect(classifyGatewayError(err('ReportRunnerCatalog', code))).toMatchObject({
        reason: 'IdentityRejected',
        identityRejected: true,
      });
    }
    expect(classifyGatewayError(err('ReportRunnerCatalog', 'UNIMPLEMENTED'))).toMatchObject({
      reason: 'PlatformError',
      unimplemented: true,
    });
  });

  it('reports configuration errors that never reached the gateway', () => {
    expect(classifyGatewayError(new TypeError('gateway url scheme must be https'))).toMatchObject({
      reason: 'GatewayConfigInvalid',
      message: 'cannot call the platform gateway: gateway url scheme must be https',
    });
  });
});

describe('desiredRunnerStatus', () => {
  const t1 = new Date('2030-01-01T00:00:00.000Z');
  const t2 = new Date('2030-01-01T00:05:00.000Z');
  const identity = {
    runnerId: 'r',
    identityId: 'i',
    serviceName: 's',
    secretName: 'x-identity',
    enrolledAt: '2030-01-01T00:00:00Z',
  };
  const ready: RunnerFacts = {
    enrolled: true,
    identity,
    catalog: {
      state: 'reported',
      reportedAt: '2030-01-01T00:00:01Z',
      summary: 'reported 0 flavors',
    },
  };
  const failure = { reason: 'GatewayUnreachable' as const, message: 'down' };
  const notEnrolled: RunnerFacts = { enrolled: false, failure };

  it('writes the kstatus conditions and identity fields of an enrolled runner', () => {
    const s = desiredRunnerStatus(undefined, ready, 3, 'cluster', t1);
    expect(s).toEqual({
      observedGeneration: 3,
      conditions: [
        {
          type: 'Enrolled',
          status: 'True',
          reason: 'Enrolled',
          message: expect.stringContaining('"s"'),
          lastTransitionTime: '2030-01-01T00:00:00Z',
          observedGeneration: 3,
        },
        {
          type: 'CatalogReported',
          status: 'True',
          reason: 'CatalogReported',
          message: 'reported 0 flavors',
          lastTransitionTime: '2030-01-01T00:00:00Z',
          observedGeneration: 3,
        },
        {
          type: 'Ready',
          status: 'True',
          reason: 'Ready',
          message: 'enrolled and catalog reported',
          lastTransitionTime: '2030-01-01T00:00:00Z',
          observedGeneration: 3,
        },
        {
          type: 'Reconciling',
          status: 'False',
          reason: 'Settled',
          message: '',
          lastTransitionTime: '2030-01-01T00:00:00Z',
          observedGeneration: 3,
        },
        {
          type: 'Stalled',
          status: 'False',
          reason: 'NotStalled',
          message: '',
          lastTransitionTime: '2030-01-01T00:00:00Z',
          observedGeneration: 3,
        },
      ],
      runnerId: 'r',
      identityId: 'i',
      serviceName: 's',
      identitySecretRef: { name: 'x-identity' },
      enrolledAt: '2030-01-01T00:00:00Z',
      catalogReportedAt: '2030-01-01T00:00:01Z',
      scope: 'cluster',
    });
    expect(isRunnerReady(s)).toBe(true);
  });

  it('yields an equal status for the same outcome later, so nothing is written', () => {
    const first = desiredRunnerStatus(undefined, ready, 3, 'cluster', t1);
    const again = desiredRunnerStatus(first, ready, 3, 'cluster', t2);
    expect(again).toEqual(first);
    expect(runnerStatusPatch(first, again)).toBeUndefined();
  });

  it('moves transition times only for conditions whose status flips', () => {
    const first = desiredRunnerStatus(undefined, ready, 3, 'cluster', t1);
    const catalogFails: RunnerFacts = {
      enrolled: true,
      identity,
      catalog: { state: 'failed', failure, everReported: true },
    };
    const second = desiredRunnerStatus(first, catalogFails, 4, 'cluster', t2);
    const byType = Object.fromEntries((second.conditions ?? []).map((c) => [c.type, c]));
    expect(byType.Enrolled).toMatchObject({
      status: 'True',
      lastTransitionTime: '2030-01-01T00:00:00Z',
      observedGeneration: 4,
    });
    expect(byType.CatalogReported).toMatchObject({
      status: 'False',
      reason: 'GatewayUnreachable',
      lastTransitionTime: '2030-01-01T00:05:00Z',
    });
    // A change that cannot be reported yet keeps an already reported runner Ready.
    expect(byType.Ready).toMatchObject({
      status: 'True',
      lastTransitionTime: '2030-01-01T00:00:00Z',
    });
    expect(byType.Ready?.message).toMatch(/not reported yet/);
    expect(second.catalogReportedAt).toBeUndefined();
  });

  it('keeps a runner whose catalog was never reported not Ready', () => {
    const s = desiredRunnerStatus(
      undefined,
      { enrolled: true, identity, catalog: { state: 'failed', failure, everReported: false } },
      1,
      'cluster',
      t1,
    );
    expect(isRunnerReady(s)).toBe(false);
    expect(s.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'GatewayUnreachable',
      message: 'down',
    });
  });

  it.each([
    ['TokenSecretMissing', 'Stalled'],
    ['TokenRejected', 'Stalled'],
    ['CASecretMissing', 'Stalled'],
    ['GatewayConfigInvalid', 'Stalled'],
    ['GatewayUnreachable', 'Reconciling'],
    ['PlatformError', 'Reconciling'],
  ] as const)('reads %s as kstatus %s (intervention needed vs retried)', (reason, kind) => {
    const s = desiredRunnerStatus(
      undefined,
      { enrolled: false, failure: { reason, message: 'm' } },
      1,
      'cluster',
      t1,
    );
    const byType = Object.fromEntries((s.conditions ?? []).map((c) => [c.type, c]));
    expect(byType.Ready).toMatchObject({ status: 'False', reason });
    expect(byType[kind]).toMatchObject({ status: 'True', reason });
    expect(byType[kind === 'Stalled' ? 'Reconciling' : 'Stalled']).toMatchObject({
      status: 'False',
    });
  });

  it('counts a platform without ReportRunnerCatalog as Ready', () => {
    const s = desiredRunnerStatus(
      undefined,
      { enrolled: true, identity, catalog: { state: 'unsupported', message: 'no RPC' } },
      1,
      'cluster',
      t1,
    );
    expect(s.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Enrolled', 'True', 'Enrolled'],
      ['CatalogReported', 'False', 'CatalogUnsupported'],
      ['Ready', 'True', 'Ready'],
      ['Reconciling', 'False', 'Settled'],
      ['Stalled', 'False', 'NotStalled'],
    ]);
  });

  it('clears the identity fields when enrollment is lost, leaving fields of others alone', () => {
    const enrolled: RunnerStatus = {
      ...desiredRunnerStatus(undefined, ready, 3, 'organization:o', t1),
      workloads: { total: 2, running: 1, failed: 0 },
    };
    const lost = desiredRunnerStatus(enrolled, notEnrolled, 3, 'organization:o', t2);
    expect(lost.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Enrolled', 'False', 'GatewayUnreachable'],
      ['CatalogReported', 'False', 'NotEnrolled'],
      ['Ready', 'False', 'GatewayUnreachable'],
      ['Reconciling', 'True', 'GatewayUnreachable'],
      ['Stalled', 'False', 'NotStalled'],
    ]);
    const patch = runnerStatusPatch(enrolled, lost);
    expect(patch).toMatchObject({
      runnerId: null,
      identityId: null,
      serviceName: null,
      identitySecretRef: null,
      enrolledAt: null,
      catalogReportedAt: null,
    });
    expect(patch).not.toHaveProperty('workloads');
    expect(patch).not.toHaveProperty('scope');
    expect(patch).not.toHaveProperty('observedGeneration');
  });
});
