import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { ReportWorkloadStateRequest } from '../../src/gen/agynio/api/runners/v1/runners.ts';
import {
  GatewayClient,
  GatewayError,
  parseGatewayUrl,
  type WorkloadStateReport,
} from '../../src/runner/gateway-client.ts';
import { startTestGateway, type EnrollFailure, type TestGateway } from '../support/test-gateway.ts';
import { generateTestPki, type TestPki } from '../support/tls.ts';

const TOKEN = 'svc-token-5f3c9a';
const IDENTITY = {
  identityJson: '{"ztAPI":"https://ziti.example:443"}',
  serviceName: 'runner-abc',
  identityId: 'ident-1',
};

async function expectGatewayError(promise: Promise<unknown>): Promise<GatewayError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

function stateReport(overrides: Partial<WorkloadStateReport> = {}): WorkloadStateReport {
  return {
    runnerId: 'runner-1',
    serviceToken: TOKEN,
    workloadId: 'wl-1',
    status: 'RUNNING',
    containers: [],
    observedAt: new Date('2030-01-02T03:04:05.678Z'),
    ...overrides,
  };
}

describe('parseGatewayUrl', () => {
  it.each([
    ['https://gw.example', 'gw.example:443', true],
    ['grpcs://gw.example', 'gw.example:443', true],
    ['grpcs://gw.example:8443/', 'gw.example:8443', true],
    ['http://gw.example', 'gw.example:80', false],
    ['grpc://10.0.0.1:9000', '10.0.0.1:9000', false],
    ['grpc://[::1]:9000', '[::1]:9000', false],
  ])('%s', (url, address, tls) => {
    expect(parseGatewayUrl(url)).toEqual({ address, tls });
  });

  it.each(['ftp://gw.example', 'gw.example:443', 'https://gw.example/prefix'])(
    'rejects %s',
    (url) => {
      expect(() => parseGatewayUrl(url)).toThrow(TypeError);
    },
  );
});

describe('GatewayClient over plaintext', () => {
  let gateway: TestGateway;
  let client: GatewayClient;

  beforeAll(async () => {
    gateway = await startTestGateway({ tokens: { [TOKEN]: IDENTITY } });
    client = new GatewayClient({ url: gateway.url, timeoutMs: 5000 });
  });
  afterAll(async () => {
    client.close();
    await gateway.stop();
  });
  afterEach(() => {
    gateway.behaviour.enrollFailure = undefined;
    gateway.behaviour.catalogFailure = undefined;
    gateway.behaviour.stateFailure = undefined;
    gateway.behaviour.stateApplied = true;
    gateway.behaviour.delayMs = 0;
    gateway.clearRequests();
  });

  it('enrolls with the service token', async () => {
    const result = await client.enroll(TOKEN);
    expect(result).toEqual({
      identityJson: Buffer.from(IDENTITY.identityJson),
      serviceName: 'runner-abc',
      identityId: 'ident-1',
    });
    expect(gateway.requests.enrollRunner).toEqual([{ serviceToken: TOKEN }]);
  });

  it('surfaces INVALID_ARGUMENT for an empty token and NOT_FOUND for an unknown one', async () => {
    const empty = await expectGatewayError(client.enroll(''));
    expect(empty.code).toBe('INVALID_ARGUMENT');
    expect(empty.grpcCode).toBe(3);
    const unknown = await expectGatewayError(client.enroll('nope'));
    expect(unknown.code).toBe('NOT_FOUND');
    expect(unknown.method).toBe('EnrollRunner');
    expect(gateway.count('enrollRunner')).toBe(2);
  });

  it.each<[EnrollFailure, number]>([
    ['INVALID_ARGUMENT', 3],
    ['NOT_FOUND', 5],
    ['UNAUTHENTICATED', 16],
    ['PERMISSION_DENIED', 7],
    ['INTERNAL', 13],
    ['UNAVAILABLE', 14],
  ])('surfaces %s', async (failure, grpcCode) => {
    gateway.behaviour.enrollFailure = failure;
    const err = await expectGatewayError(client.enroll(TOKEN));
    expect(err.code).toBe(failure);
    expect(err.grpcCode).toBe(grpcCode);
    expect(err.message).not.toContain(TOKEN);
  });

  it('rejects a response without identity', async () => {
    gateway.behaviour.enrollFailure = 'MALFORMED';
    const err = await expectGatewayError(client.enroll(TOKEN));
    expect(err.code).toBe('MALFORMED_RESPONSE');
    expect(err.grpcCode).toBeUndefined();
  });

  it.each([
    ['identity_json', { ...IDENTITY, identityJson: '' }],
    ['identity_id', { ...IDENTITY, identityId: '' }],
  ])('rejects a response with empty %s', async (field, identity) => {
    gateway.tokens.set('partial', identity);
    const err = await expectGatewayError(client.enroll('partial'));
    expect(err.code).toBe('MALFORMED_RESPONSE');
    expect(err.message).toContain(field);
  });

  it('never puts the token into the error message', async () => {
    const token = 'secret-token-that-must-not-leak';
    const err = await expectGatewayError(client.enroll(token));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).not.toContain(token);
    expect(err.details).not.toContain(token);
    expect(JSON.stringify(err)).not.toContain(token);
  });

  it('reports the catalog', async () => {
    const result = await client.reportCatalog({
      runnerId: 'runner-1',
      serviceToken: TOKEN,
      flavors: [
        {
          name: 'small',
          resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } },
          default: true,
          deprecated: false,
        },
        { name: 'old', resources: {}, default: false, deprecated: true },
      ],
      storageClasses: [{ name: 'fast', default: true, deprecated: false }],
      capabilities: ['docker'],
    });
    expect(result).toEqual({ flavorCount: 2, storageClassCount: 1, capabilityCount: 1 });
    expect(gateway.requests.reportRunnerCatalog).toEqual([
      {
        runnerId: 'runner-1',
        serviceToken: TOKEN,
        flavors: [
          {
            name: 'small',
            resources: {
              requestsCpu: '500m',
              requestsMemory: '1Gi',
              limitsCpu: '',
              limitsMemory: '2Gi',
            },
            default: true,
            deprecated: false,
          },
          {
            name: 'old',
            resources: { requestsCpu: '', requestsMemory: '', limitsCpu: '', limitsMemory: '' },
            default: false,
            deprecated: true,
          },
        ],
        storageClasses: [{ name: 'fast', default: true, deprecated: false }],
        capabilities: ['docker'],
      },
    ]);
  });

  it.each(['UNAVAILABLE', 'UNIMPLEMENTED'] as const)(
    'surfaces %s from ReportRunnerCatalog',
    async (failure) => {
      gateway.behaviour.catalogFailure = failure;
      const err = await expectGatewayError(
        client.reportCatalog({
          runnerId: 'r',
          serviceToken: TOKEN,
          flavors: [],
          storageClasses: [],
          capabilities: [],
        }),
      );
      expect(err.code).toBe(failure);
      expect(err.method).toBe('ReportRunnerCatalog');
    },
  );

  it('reports workload state with the runners.v1 numbers, mapped by name', async () => {
    const startedAt = new Date('2030-01-02T03:00:00.000Z');
    const applied = await client.reportWorkloadState(
      stateReport({
        containers: [
          {
            containerId: 'containerd://abc',
            name: 'main',
            role: 'MAIN',
            image: 'busybox:1',
            status: 'TERMINATED',
            reason: 'Error',
            message: 'boom',
            exitCode: 0,
            restartCount: 2,
            startedAt,
          },
          {
            containerId: '',
            name: 'ziti',
            role: 'SIDECAR',
            image: 'ziti:1',
            status: 'WAITING',
            reason: 'ImagePullBackOff',
            restartCount: 0,
          },
        ],
      }),
    );
    expect(applied).toBe(true);
    const [received] = gateway.requests.reportWorkloadState;
    expect(received).toEqual({
      runnerId: 'runner-1',
      serviceToken: TOKEN,
      workloadId: 'wl-1',
      status: 2,
      containers: [
        {
          containerId: 'containerd://abc',
          name: 'main',
          role: 1,
          image: 'busybox:1',
          status: 2,
          reason: 'Error',
          message: 'boom',
          exitCode: 0,
          restartCount: 2,
          startedAt,
          finishedAt: undefined,
        },
        {
          containerId: '',
          name: 'ziti',
          role: 2,
          image: 'ziti:1',
          status: 3,
          reason: 'ImagePullBackOff',
          message: undefined,
          exitCode: undefined,
          restartCount: 0,
          startedAt: undefined,
          finishedAt: undefined,
        },
      ],
      observedAt: new Date('2030-01-02T03:04:05.678Z'),
    });
    const wire = Buffer.from(ReportWorkloadStateRequest.encode(received!).finish());
    expect(wire.includes(Buffer.from([0x20, 0x02]))).toBe(true);
  });

  it.each([
    ['STARTING', 1],
    ['RUNNING', 2],
    ['STOPPING', 3],
    ['STOPPED', 4],
    ['FAILED', 5],
  ] as const)('maps %s to %i', async (name, wireValue) => {
    await client.reportWorkloadState(stateReport({ status: name }));
    expect(gateway.requests.reportWorkloadState[0]?.status).toBe(wireValue);
  });

  it('rejects an unknown status name before calling', async () => {
    const bogus = stateReport({ status: 'PAUSED' as unknown as WorkloadStateReport['status'] });
    await expect(client.reportWorkloadState(bogus)).rejects.toThrow(TypeError);
    expect(gateway.count('reportWorkloadState')).toBe(0);
  });

  it('returns applied=false when the platform drops the report', async () => {
    gateway.behaviour.stateApplied = false;
    await expect(client.reportWorkloadState(stateReport())).resolves.toBe(false);
  });

  it.each(['UNAVAILABLE', 'UNIMPLEMENTED'] as const)(
    'surfaces %s from ReportWorkloadState',
    async (failure) => {
      gateway.behaviour.stateFailure = failure;
      const err = await expectGatewayError(client.reportWorkloadState(stateReport()));
      expect(err.code).toBe(failure);
      expect(err.message).not.toContain(TOKEN);
    },
  );

  it('a call whose signal is aborted ends CANCELLED at once', async () => {
    gateway.behaviour.delayMs = 2000;
    const stop = new AbortController();
    const enrolling = expectGatewayError(client.enroll(TOKEN, stop.signal));
    setTimeout(() => stop.abort(), 50);
    expect((await enrolling).code).toBe('CANCELLED');
    const reporting = expectGatewayError(
      client.reportCatalog(
        { runnerId: 'r', serviceToken: TOKEN, flavors: [], storageClasses: [], capabilities: [] },
        AbortSignal.abort(),
      ),
    );
    expect((await reporting).code).toBe('CANCELLED');
  });

  it('gives every call a deadline', async () => {
    gateway.behaviour.delayMs = 2000;
    const hasty = new GatewayClient({ url: gateway.url, timeoutMs: 150 });
    try {
      const started = Date.now();
      const err = await expectGatewayError(hasty.enroll(TOKEN));
      expect(err.code).toBe('DEADLINE_EXCEEDED');
      expect(Date.now() - started).toBeLessThan(1500);
      const reportErr = await expectGatewayError(hasty.reportWorkloadState(stateReport()));
      expect(reportErr.code).toBe('DEADLINE_EXCEEDED');
    } finally {
      hasty.close();
    }
  });
});

describe('GatewayClient over TLS', () => {
  let pki: TestPki;
  let gateway: TestGateway;

  beforeAll(async () => {
    pki = await generateTestPki();
    gateway = await startTestGateway({
      tokens: { [TOKEN]: IDENTITY },
      tls: { cert: pki.server.cert, key: pki.server.key },
    });
  }, 30000);
  afterAll(async () => {
    await gateway?.stop();
    await pki?.cleanup();
  });

  // TLS ServerName (SNI) must be a DNS name (RFC 6066); Node warns (DEP0123) when grpc-js
  // passes an IP address, so the TLS tests dial the certificate's DNS name.
  it.each(['grpcs', 'https'])('enrolls via %s:// with the given CA', async (scheme) => {
    const url = `${scheme}://localhost:${gateway.port}`;
    const client = new GatewayClient({ url, caPem: pki.ca.cert, timeoutMs: 5000 });
    try {
      await expect(client.enroll(TOKEN)).resolves.toMatchObject({ identityId: 'ident-1' });
    } finally {
      client.close();
    }
  });

  it('accepts the DNS name in the server certificate', async () => {
    const url = `grpcs://localhost:${gateway.port}`;
    const client = new GatewayClient({ url, caPem: pki.ca.cert, timeoutMs: 5000 });
    try {
      await expect(client.enroll(TOKEN)).resolves.toMatchObject({ serviceName: 'runner-abc' });
    } finally {
      client.close();
    }
  });

  it('fails without the CA', async () => {
    const client = new GatewayClient({ url: `grpcs://localhost:${gateway.port}`, timeoutMs: 5000 });
    try {
      const err = await expectGatewayError(client.enroll(TOKEN));
      expect(err.code).toBe('UNAVAILABLE');
    } finally {
      client.close();
    }
  });

  it('fails when dialing the TLS gateway in plaintext', async () => {
    const url = `grpc://127.0.0.1:${gateway.port}`;
    const client = new GatewayClient({ url, timeoutMs: 5000 });
    try {
      const err = await expectGatewayError(client.enroll(TOKEN));
      expect(err.code).toBe('UNAVAILABLE');
    } finally {
      client.close();
    }
  });
});
