import {
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerErrorResponse,
  type ServerUnaryCall,
} from '@grpc/grpc-js';
import {
  RunnersGatewayService,
  type RunnersGatewayServer,
} from '../../src/gen/agynio/api/gateway/v1/runners.ts';
import type {
  EnrollRunnerRequest,
  EnrollRunnerResponse,
  ReportRunnerCatalogRequest,
  ReportRunnerCatalogResponse,
  ReportWorkloadStateRequest,
  ReportWorkloadStateResponse,
} from '../../src/gen/agynio/api/runners/v1/runners.ts';

export interface TestIdentity {
  identityJson: Buffer | string;
  serviceName: string;
  identityId: string;
}

export type EnrollFailure =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'INTERNAL'
  | 'UNAVAILABLE'
  /** Answers OK with empty identity_json and identity_id. */
  | 'MALFORMED';

export type ReportFailure = 'UNAVAILABLE' | 'UNIMPLEMENTED';

/** Read on every call, so tests may change it while the server runs. */
export interface TestGatewayBehaviour {
  enrollFailure?: EnrollFailure;
  catalogFailure?: ReportFailure;
  stateFailure?: ReportFailure;
  /** The `applied` answer of ReportWorkloadState. */
  stateApplied: boolean;
  /** Delay before every answer (to exercise deadlines). */
  delayMs: number;
}

export interface TestGatewayOptions extends Partial<TestGatewayBehaviour> {
  /** Valid service tokens and the identity each enrolls as. */
  tokens?: Record<string, TestIdentity>;
  /** Serve TLS with this certificate and key; plaintext otherwise. */
  tls?: { cert: Buffer; key: Buffer };
}

export interface TestGatewayRequests {
  enrollRunner: EnrollRunnerRequest[];
  reportRunnerCatalog: ReportRunnerCatalogRequest[];
  reportWorkloadState: ReportWorkloadStateRequest[];
}

export type TestGatewayRpc = keyof TestGatewayRequests;

export interface TestGateway {
  /** grpc://127.0.0.1:PORT, or grpcs://127.0.0.1:PORT with TLS. */
  url: string;
  port: number;
  tokens: Map<string, TestIdentity>;
  behaviour: TestGatewayBehaviour;
  /** Every request received, per RPC in arrival order, whatever the answer. */
  requests: TestGatewayRequests;
  count(rpc: TestGatewayRpc): number;
  /** Forgets recorded requests. */
  clearRequests(): void;
  stop(): Promise<void>;
}

function fail(code: status, details: string): ServerErrorResponse {
  return Object.assign(new Error(details), { code, details });
}

const ENROLL_FAILURE_MESSAGES: Record<Exclude<EnrollFailure, 'MALFORMED'>, string> = {
  INVALID_ARGUMENT: 'service token is required',
  NOT_FOUND: 'runner not found',
  UNAUTHENTICATED: 'unauthenticated',
  PERMISSION_DENIED: 'permission denied',
  INTERNAL: 'platform failure',
  UNAVAILABLE: 'gateway unavailable',
};

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const tokens = new Map(Object.entries(options.tokens ?? {}));
  const behaviour: TestGatewayBehaviour = {
    enrollFailure: options.enrollFailure,
    catalogFailure: options.catalogFailure,
    stateFailure: options.stateFailure,
    stateApplied: options.stateApplied ?? true,
    delayMs: options.delayMs ?? 0,
  };
  const requests: TestGatewayRequests = {
    enrollRunner: [],
    reportRunnerCatalog: [],
    reportWorkloadState: [],
  };
  const timers = new Set<NodeJS.Timeout>();

  function answer<Res>(
    callback: sendUnaryData<Res>,
    produce: () => Res | ServerErrorResponse,
  ): void {
    const send = (): void => {
      const result = produce();
      if (result instanceof Error) callback(result);
      else callback(null, result);
    };
    if (behaviour.delayMs <= 0) {
      send();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      send();
    }, behaviour.delayMs);
    timers.add(timer);
  }

  function enroll(req: EnrollRunnerRequest): EnrollRunnerResponse | ServerErrorResponse {
    const forced = behaviour.enrollFailure;
    if (forced === 'MALFORMED') {
      return { identityJson: Buffer.alloc(0), serviceName: 'malformed', identityId: '' };
    }
    if (forced !== undefined) return fail(status[forced], ENROLL_FAILURE_MESSAGES[forced]);
    if (req.serviceToken === '') {
      return fail(status.INVALID_ARGUMENT, ENROLL_FAILURE_MESSAGES.INVALID_ARGUMENT);
    }
    const identity = tokens.get(req.serviceToken);
    if (identity === undefined) return fail(status.NOT_FOUND, ENROLL_FAILURE_MESSAGES.NOT_FOUND);
    return {
      identityJson: Buffer.from(identity.identityJson),
      serviceName: identity.serviceName,
      identityId: identity.identityId,
    };
  }

  function reportFailure(failure: ReportFailure | undefined): ServerErrorResponse | undefined {
    if (failure === 'UNAVAILABLE') return fail(status.UNAVAILABLE, 'gateway unavailable');
    if (failure === 'UNIMPLEMENTED') return fail(status.UNIMPLEMENTED, 'method not implemented');
    return undefined;
  }

  const implementation: RunnersGatewayServer = {
    enrollRunner(
      call: ServerUnaryCall<EnrollRunnerRequest, EnrollRunnerResponse>,
      callback: sendUnaryData<EnrollRunnerResponse>,
    ) {
      requests.enrollRunner.push(call.request);
      answer(callback, () => enroll(call.request));
    },
    reportRunnerCatalog(
      call: ServerUnaryCall<ReportRunnerCatalogRequest, ReportRunnerCatalogResponse>,
      callback: sendUnaryData<ReportRunnerCatalogResponse>,
    ) {
      requests.reportRunnerCatalog.push(call.request);
      answer(
        callback,
        () =>
          reportFailure(behaviour.catalogFailure) ?? {
            flavorCount: call.request.flavors.length,
            storageClassCount: call.request.storageClasses.length,
            capabilityCount: call.request.capabilities.length,
          },
      );
    },
    reportWorkloadState(
      call: ServerUnaryCall<ReportWorkloadStateRequest, ReportWorkloadStateResponse>,
      callback: sendUnaryData<ReportWorkloadStateResponse>,
    ) {
      requests.reportWorkloadState.push(call.request);
      answer(
        callback,
        () => reportFailure(behaviour.stateFailure) ?? { applied: behaviour.stateApplied },
      );
    },
  };

  const server = new Server();
  server.addService(RunnersGatewayService, implementation);
  const creds = options.tls
    ? ServerCredentials.createSsl(null, [
        { cert_chain: options.tls.cert, private_key: options.tls.key },
      ])
    : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', creds, (err, bound) => (err ? reject(err) : resolve(bound)));
  });

  return {
    url: `${options.tls ? 'grpcs' : 'grpc'}://127.0.0.1:${port}`,
    port,
    tokens,
    behaviour,
    requests,
    count: (rpc) => requests[rpc].length,
    clearRequests() {
      for (const list of Object.values(requests) as unknown[][]) list.length = 0;
    },
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.forceShutdown();
    },
  };
}

/**
 * A Runner's spec.gateway for a test gateway: plaintext test gateways need the explicit
 * insecure flag (the service token is otherwise sent only over TLS).
 */
export function testGateway<G extends { url: string }>(gateway: G): G & { insecure?: boolean } {
  return /^(grpcs|https):/.test(gateway.url) ? gateway : { ...gateway, insecure: true };
}
