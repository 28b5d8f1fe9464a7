import { status, credentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import {
  ExecRequest,
  RunnerServiceClient,
  StreamEventsRequest,
  type ExecResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { metricsRegistry } from '../../src/observability/metrics.ts';
import { generateTestPki, type TestPki } from '../support/tls.ts';
import {
  bearer,
  call,
  codeOf,
  collect,
  startHarness,
  type GrpcHarness,
} from '../fixtures/grpc-harness.ts';

let pki: TestPki;
let otherPki: TestPki;

beforeAll(async () => {
  pki = await generateTestPki();
  otherPki = await generateTestPki({ caCommonName: 'someone else' });
});

afterAll(async () => {
  await pki?.cleanup();
  await otherPki?.cleanup();
});

/** Ready (unary), StreamEvents (server stream) and Exec (bidi) with the given client and metadata. */
async function threeCalls(
  client: RunnerServiceClient,
  metadata: Metadata = new Metadata(),
): Promise<number[]> {
  const unary = await codeOf(call(client, 'ready', {}, metadata));
  const events = client.streamEvents(
    StreamEventsRequest.fromPartial({ since: Math.floor(Date.now() / 1000) + 3600 }),
    metadata,
  );
  const eventsDone = collect(events);
  setTimeout(() => events.cancel(), 500);
  const exec = client.exec(metadata);
  const execDone = collect<ExecResponse>(exec);
  exec.write(
    ExecRequest.fromPartial({
      msg: { $case: 'start', start: { targetId: 'x', commandArgv: ['true'] } },
    }),
  );
  return [unary.code, (await eventsDone).code, (await execDone).code];
}

function clientFor(h: GrpcHarness, creds: ChannelCredentials): RunnerServiceClient {
  return new RunnerServiceClient(h.address, creds, {
    'grpc.ssl_target_name_override': 'localhost',
  });
}

describe('mutual TLS', () => {
  let h: GrpcHarness;
  beforeAll(async () => {
    h = await startHarness({
      prefix: 'grpc-mtls',
      withController: false,
      auth: { mode: 'mtls', caPem: pki.ca.cert, certPem: pki.server.cert, keyPem: pki.server.key },
      clientCredentials: credentials.createSsl(pki.ca.cert, pki.client.key, pki.client.cert),
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  test('a client certificate signed by the CA is accepted on every kind of call', async () => {
    expect(await call(h.client, 'ready', {})).toEqual({ status: 'ok' });
    // Events: cancelled by the client; Exec: authenticated, then refused in-band (unknown pod).
    expect(await threeCalls(h.client)).toEqual([status.OK, status.CANCELLED, status.NOT_FOUND]);
  });

  test('no client certificate: UNAUTHENTICATED, streams included', async () => {
    const client = clientFor(h, credentials.createSsl(pki.ca.cert));
    try {
      expect(await threeCalls(client)).toEqual([
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
      ]);
    } finally {
      client.close();
    }
  });

  test('a certificate from another CA: UNAUTHENTICATED', async () => {
    const client = clientFor(
      h,
      credentials.createSsl(pki.ca.cert, otherPki.client.key, otherPki.client.cert),
    );
    try {
      const { code, details } = await codeOf(call(client, 'ready', {}));
      expect(code).toBe(status.UNAUTHENTICATED);
      expect(details).toMatch(/client certificate/);
    } finally {
      client.close();
    }
  });
});

describe('bearer tokens', () => {
  let h: GrpcHarness;
  let tokens = ['first-token'];
  beforeAll(async () => {
    h = await startHarness({
      prefix: 'grpc-tok',
      withController: false,
      auth: {
        mode: 'token',
        tokens: () => tokens,
        certPem: pki.server.cert,
        keyPem: pki.server.key,
      },
      clientCredentials: credentials.createSsl(pki.ca.cert),
      maxMessageBytes: 1024 * 1024,
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  test('the right token is accepted', async () => {
    expect(await threeCalls(h.client, bearer('first-token'))).toEqual([
      status.OK,
      status.CANCELLED,
      status.NOT_FOUND,
    ]);
  });

  test('missing or wrong tokens are UNAUTHENTICATED on every kind of call', async () => {
    const unauthenticated = [
      status.UNAUTHENTICATED,
      status.UNAUTHENTICATED,
      status.UNAUTHENTICATED,
    ];
    expect(await threeCalls(h.client)).toEqual(unauthenticated);
    expect(await threeCalls(h.client, bearer('wrong-token'))).toEqual(unauthenticated);
    const metrics = await metricsRegistry.getSingleMetricAsString('grpc_server_handled_total');
    expect(metrics).toMatch(
      /grpc_server_handled_total\{grpc_service="agynio\.api\.runner\.v1\.RunnerService",grpc_method="Exec",grpc_code="Unauthenticated"\} [1-9]/,
    );
    const basic = new Metadata();
    basic.set('authorization', 'Basic Zmlyc3QtdG9rZW4=');
    expect((await codeOf(call(h.client, 'ready', {}, basic))).code).toBe(status.UNAUTHENTICATED);
  });

  test('tokens are read on every call (rotation)', async () => {
    tokens = ['second-token'];
    expect((await codeOf(call(h.client, 'ready', {}, bearer('first-token')))).code).toBe(
      status.UNAUTHENTICATED,
    );
    expect(await call(h.client, 'ready', {}, bearer('second-token'))).toEqual({ status: 'ok' });
    tokens = ['first-token'];
  });

  test('an oversized message is refused with RESOURCE_EXHAUSTED and the server keeps serving', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024);
    const { code } = await codeOf(
      call(
        h.client,
        'putArchive',
        { workloadId: 'w', path: '/tmp', tarPayload: big },
        bearer('first-token'),
      ),
    );
    expect(code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await call(h.client, 'ready', {}, bearer('first-token'))).toEqual({ status: 'ok' });
  });
});

test('plain text is served only when insecure mode is chosen', async () => {
  const h = await startHarness({ prefix: 'grpc-ins', withController: false });
  try {
    expect(await call(h.client, 'ready', {})).toEqual({ status: 'ok' });
  } finally {
    await h.close();
  }
});
