/**
 * Every RPC of the RunnerService is refused for an unauthenticated or wrongly authenticated
 * client, in token mode and in mTLS mode, before it can act (grpc-auth.test.ts covers three
 * kinds of call with a missing or wrong credential; this covers all seventeen RPCs, the
 * subtler wrong credentials, and the operator process reading its token from a Secret).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  Client,
  Metadata,
  credentials,
  status,
  type ChannelCredentials,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  RunnerServiceService,
  StartWorkloadRequest,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { PODS, SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { bearer, call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import { startOperator, type OperatorProcess } from '../support/operator-process.ts';
import { generateTestPki, type TestPki } from '../support/tls.ts';

const run = promisify(execFile);
const RPCS = Object.entries(RunnerServiceService);
const GOOD_TOKEN = 'good-token-7f3a9c';
const TARGET_ID = '0e0e0e0e-1111-4222-8333-444444444444';

let pki: TestPki;
let otherPki: TestPki;
/** Client certificates from the right CA that must still be refused. */
let expired: { cert: Buffer; key: Buffer };
let serverOnly: { cert: Buffer; key: Buffer };

async function issueClient(
  p: TestPki,
  name: string,
  days: number,
  eku: string,
): Promise<{ cert: Buffer; key: Buffer }> {
  const openssl = (args: string[]) => run('openssl', args, { cwd: p.dir });
  await openssl([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${name}`,
  ]);
  await run(
    'sh',
    ['-c', `printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=${eku}\\n' > ${name}.ext`],
    { cwd: p.dir },
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-set_serial',
    String(100 + days + name.length),
    '-days',
    String(days),
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  ]);
  return {
    cert: await readFile(path.join(p.dir, `${name}.crt`)),
    key: await readFile(path.join(p.dir, `${name}.key`)),
  };
}

beforeAll(async () => {
  pki = await generateTestPki();
  otherPki = await generateTestPki({ caCommonName: 'someone else' });
  expired = await issueClient(pki, 'expired-client', -1, 'clientAuth');
  serverOnly = await issueClient(pki, 'server-only', 2, 'serverAuth');
});

afterAll(async () => {
  await pki?.cleanup();
  await otherPki?.cleanup();
});

/**
 * Calls every RPC once with `metadata` (requests aimed at an existing workload), and
 * returns the status name of each: unary answers, the status ending a stream.
 */
async function callEveryRpc(
  address: string,
  creds: ChannelCredentials,
  metadata: Metadata,
): Promise<Record<string, string>> {
  const client = new Client(address, creds, { 'grpc.ssl_target_name_override': 'localhost' });
  const deadline = () => ({ deadline: Date.now() + 10_000 });
  try {
    const codes = await Promise.all(
      RPCS.map(async ([name, def]) => {
        // Valid requests (what an attacker would send), so a refusal is the authentication's.
        const request =
          name === 'startWorkload'
            ? StartWorkloadRequest.fromPartial({ main: { image: 'example.invalid/agent:1' } })
            : {
                ...(def.requestDeserialize(Buffer.alloc(0)) as object),
                workloadId: TARGET_ID,
                volumeName: 'data',
                path: '/tmp',
              };
        const serialize = def.requestSerialize as (v: object) => Buffer;
        const deserialize = def.responseDeserialize as (b: Buffer) => unknown;
        const code = await new Promise<number>((resolve) => {
          if (!def.requestStream && !def.responseStream) {
            client.makeUnaryRequest(
              def.path,
              serialize,
              deserialize,
              request,
              metadata,
              deadline(),
              (err: ServiceError | null) => resolve(err ? err.code : status.OK),
            );
          } else if (!def.requestStream) {
            const stream = client.makeServerStreamRequest(
              def.path,
              serialize,
              deserialize,
              request,
              metadata,
              deadline(),
            );
            stream.on('data', () => stream.cancel());
            stream.on('error', () => {});
            stream.on('status', (s: { code: number }) => resolve(s.code));
            // An admitted stream may wait for events: leave it once admitted.
            setTimeout(() => stream.cancel(), 1_500);
          } else {
            const stream = client.makeBidiStreamRequest(
              def.path,
              serialize,
              deserialize,
              metadata,
              deadline(),
            );
            stream.on('data', () => {});
            stream.on('error', () => {});
            stream.on('status', (s: { code: number }) => resolve(s.code));
            stream.write(def.requestDeserialize(Buffer.alloc(0)));
            stream.end();
            setTimeout(() => stream.cancel(), 1_500);
          }
        });
        return [name, status[code] ?? String(code)] as const;
      }),
    );
    return Object.fromEntries(codes);
  } finally {
    client.close();
  }
}

const allRefused = (): Record<string, string> =>
  Object.fromEntries(RPCS.map(([name]) => [name, 'UNAUTHENTICATED']));

/** What a refused client could have changed: workloads, Secrets, Pods. */
async function snapshot(h: GrpcHarness): Promise<string[]> {
  const out: string[] = [];
  for (const type of [AGENT_WORKLOADS, SECRETS, PODS]) {
    for (const item of (await h.kube.resource<KubeObject>(type).list(h.ns.name)).items) {
      out.push(`${type.kind}/${item.metadata?.name}@${item.metadata?.resourceVersion}`);
    }
  }
  return out.sort();
}

/** A workload the refused clients aim at, started with good credentials. */
async function target(h: GrpcHarness, metadata?: Metadata): Promise<void> {
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: TARGET_ID,
      main: { image: 'example.invalid/agent:1' },
    }),
    metadata,
  );
  await eventually(() => h.caches.workload(`workload-${TARGET_ID}`), {
    what: 'the target in the cache',
  });
}

describe('token mode (over TLS)', () => {
  let h: GrpcHarness;
  beforeAll(async () => {
    h = await startHarness({
      prefix: 'sec-tok',
      withController: false,
      auth: {
        mode: 'token',
        tokens: () => [GOOD_TOKEN],
        certPem: pki.server.cert,
        keyPem: pki.server.key,
      },
      clientCredentials: credentials.createSsl(pki.ca.cert),
    });
    await target(h, bearer(GOOD_TOKEN));
  });
  afterAll(async () => {
    await h?.close();
  });

  const header = (name: string, ...values: string[]): Metadata => {
    const md = new Metadata();
    for (const v of values) md.add(name, v);
    return md;
  };
  const variants: Array<[string, () => Metadata]> = [
    ['no credentials', () => new Metadata()],
    ['a wrong token', () => bearer('wrong-token')],
    ['a prefix of the token', () => bearer(GOOD_TOKEN.slice(0, -1))],
    ['the token with more after it', () => bearer(`${GOOD_TOKEN}0`)],
    ['the token in upper case', () => bearer(GOOD_TOKEN.toUpperCase())],
    ['an empty bearer token', () => header('authorization', 'Bearer ')],
    [
      'the token as Basic credentials',
      () => header('authorization', `Basic ${Buffer.from(GOOD_TOKEN).toString('base64')}`),
    ],
    ['the token without a scheme', () => header('authorization', GOOD_TOKEN)],
    ['the token in another header', () => header('x-api-key', GOOD_TOKEN)],
    // grpc-js will not send two authorization values; a proxy joining them gives this.
    [
      'two tokens joined in one header',
      () => header('authorization', `Bearer wrong-token, Bearer ${GOOD_TOKEN}`),
    ],
  ];

  test.each(variants)(
    '%s: every RPC is UNAUTHENTICATED and nothing changes',
    async (_what, metadata) => {
      const before = await snapshot(h);
      expect(await callEveryRpc(h.address, credentials.createSsl(pki.ca.cert), metadata())).toEqual(
        allRefused(),
      );
      expect(await snapshot(h)).toEqual(before);
    },
  );

  test('the right token reaches every RPC (none answers UNAUTHENTICATED)', async () => {
    const codes = await callEveryRpc(
      h.address,
      credentials.createSsl(pki.ca.cert),
      bearer(GOOD_TOKEN),
    );
    expect(Object.entries(codes).filter(([, code]) => code === 'UNAUTHENTICATED')).toEqual([]);
  });
});

describe('mutual TLS', () => {
  let h: GrpcHarness;
  beforeAll(async () => {
    h = await startHarness({
      prefix: 'sec-mtls',
      withController: false,
      auth: { mode: 'mtls', caPem: pki.ca.cert, certPem: pki.server.cert, keyPem: pki.server.key },
      clientCredentials: credentials.createSsl(pki.ca.cert, pki.client.key, pki.client.cert),
    });
    await target(h);
  });
  afterAll(async () => {
    await h?.close();
  });

  const variants: Array<[string, () => ChannelCredentials]> = [
    ['no client certificate', () => credentials.createSsl(pki.ca.cert)],
    [
      'a certificate from another CA',
      () => credentials.createSsl(pki.ca.cert, otherPki.client.key, otherPki.client.cert),
    ],
    [
      "another CA's own certificate",
      () => credentials.createSsl(pki.ca.cert, otherPki.ca.key, otherPki.ca.cert),
    ],
    [
      'an expired certificate from the right CA',
      () => credentials.createSsl(pki.ca.cert, expired.key, expired.cert),
    ],
    [
      'a server-only certificate from the right CA',
      () => credentials.createSsl(pki.ca.cert, serverOnly.key, serverOnly.cert),
    ],
  ];

  test.each(variants)(
    '%s: every RPC is UNAUTHENTICATED and nothing changes',
    async (_what, creds) => {
      const before = await snapshot(h);
      const codes = await callEveryRpc(h.address, creds(), bearer(GOOD_TOKEN));
      // A handshake the server breaks off is UNAVAILABLE: refused before any RPC too.
      expect(
        Object.entries(codes).filter(
          ([, code]) => code !== 'UNAUTHENTICATED' && code !== 'UNAVAILABLE',
        ),
      ).toEqual([]);
      expect(await snapshot(h)).toEqual(before);
    },
  );

  test('the right client certificate reaches every RPC', async () => {
    const codes = await callEveryRpc(
      h.address,
      credentials.createSsl(pki.ca.cert, pki.client.key, pki.client.cert),
      new Metadata(),
    );
    expect(
      Object.entries(codes).filter(
        ([, code]) => code === 'UNAUTHENTICATED' || code === 'UNAVAILABLE',
      ),
    ).toEqual([]);
  });
});

describe('the operator process', () => {
  const client = testKubeClient();
  let ns: TestNamespace;
  const operators: OperatorProcess[] = [];
  let tlsDir: string;

  beforeAll(async () => {
    ns = await createTestNamespace(client, 'sec-op');
    tlsDir = path.join(pki.dir, 'operator-tls');
    await mkdir(tlsDir, { recursive: true });
    await copyFile(pki.server.certPath, path.join(tlsDir, 'tls.crt'));
    await copyFile(pki.server.keyPath, path.join(tlsDir, 'tls.key'));
    await copyFile(path.join(pki.dir, 'ca.crt'), path.join(tlsDir, 'ca.crt'));
  });
  afterAll(async () => {
    await Promise.all(operators.map((o) => o.stop('SIGKILL')));
    await ns?.cleanup();
    client.close();
  });

  const env = (mode: string): Record<string, string> => ({
    OPERATOR_NAMESPACE: ns.name,
    WORKLOAD_NAMESPACE: `${ns.name}-workloads`,
    LEADER_ELECTION: 'false',
    STANDALONE: 'true',
    GRPC_AUTH_MODE: mode,
    GRPC_TLS_DIR: tlsDir,
    GRPC_TOKEN_SECRET: 'grpc-token',
  });

  test('token mode: no Secret, no access; the Secret admits its token only; deleting it locks everyone out', async () => {
    const op = await startOperator({ name: 'sec-token-op', env: env('token') });
    operators.push(op);
    const address = `127.0.0.1:${op.grpcPort}`;
    const tls = () => credentials.createSsl(pki.ca.cert);
    // "started" is logged before the caches sync; until then every call is UNAVAILABLE.
    await eventually(
      async () => (await callEveryRpc(address, tls(), new Metadata())).ready !== 'UNAVAILABLE',
      { what: 'the caches synced' },
    );
    // Without the token Secret there is no valid token at all, not even an empty one.
    expect(await callEveryRpc(address, tls(), bearer(GOOD_TOKEN))).toEqual(allRefused());
    expect(await callEveryRpc(address, tls(), new Metadata())).toEqual(allRefused());

    await client.resource(SECRETS).create(ns.name, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'grpc-token' },
      data: { token: Buffer.from(`${GOOD_TOKEN}\n`).toString('base64') },
    } as KubeObject);
    const ready = async (): Promise<string> =>
      (await callEveryRpc(address, tls(), bearer(GOOD_TOKEN))).ready ?? '';
    await eventually(async () => (await ready()) === 'OK', { what: 'the token Secret in effect' });
    expect(await callEveryRpc(address, tls(), bearer('wrong-token'))).toEqual(allRefused());

    await client.resource(SECRETS).delete(ns.name, 'grpc-token');
    await eventually(async () => (await ready()) === 'UNAUTHENTICATED', {
      what: 'the deleted token refused',
    });
    expect(await callEveryRpc(address, tls(), bearer(GOOD_TOKEN))).toEqual(allRefused());
  });

  test('mTLS mode: only a certificate from GRPC_TLS_DIR/ca.crt gets in', async () => {
    const op = await startOperator({ name: 'sec-mtls-op', env: env('mtls') });
    operators.push(op);
    const address = `127.0.0.1:${op.grpcPort}`;
    const refusedOnly = (codes: Record<string, string>) =>
      Object.entries(codes).filter(
        ([, code]) => code !== 'UNAUTHENTICATED' && code !== 'UNAVAILABLE',
      );
    expect(
      refusedOnly(
        await callEveryRpc(address, credentials.createSsl(pki.ca.cert), bearer(GOOD_TOKEN)),
      ),
    ).toEqual([]);
    expect(
      refusedOnly(
        await callEveryRpc(
          address,
          credentials.createSsl(pki.ca.cert, otherPki.client.key, otherPki.client.cert),
          new Metadata(),
        ),
      ),
    ).toEqual([]);
    expect(
      refusedOnly(
        await callEveryRpc(
          address,
          credentials.createSsl(pki.ca.cert, expired.key, expired.cert),
          new Metadata(),
        ),
      ),
    ).toEqual([]);
    const good = await callEveryRpc(
      address,
      credentials.createSsl(pki.ca.cert, pki.client.key, pki.client.cert),
      new Metadata(),
    );
    expect(good.ready).toBe('OK');
  });
});
