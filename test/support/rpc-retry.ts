/**
 * An orchestrator-like client through `kubectl port-forward` to a Service: calls that fail
 * with a status a client may retry (UNAVAILABLE: the forwarded Pod went away) reconnect the
 * port-forward and are tried again; every other failure is returned, never retried.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import type {
  DeepPartial,
  ExecStartRequest,
  RunnerServiceClient,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { exec, type ExecOutcome, type PrivateRealNodeCluster } from './real-node.ts';
import { orchestratorClient, portForward, type PortForward } from './installed-chart.ts';

export interface Outcome {
  method: string;
  code: number;
  details: string;
}

export class ServiceConnection {
  private forward?: PortForward;
  private clientNow?: RunnerServiceClient;
  /** Every failed attempt, retried or not. */
  readonly failures: Outcome[] = [];
  reconnects = 0;

  constructor(
    private readonly cluster: PrivateRealNodeCluster,
    private readonly namespace: string,
    private readonly service: string,
    private readonly port: number,
    private readonly token: string,
  ) {}

  async client(): Promise<RunnerServiceClient> {
    if (this.clientNow && this.forward?.process.exitCode === null) return this.clientNow;
    await this.reconnect();
    return this.clientNow!;
  }

  /** The port-forward's local port (connect first). */
  get localPort(): number {
    if (!this.forward) throw new Error('not connected');
    return this.forward.port;
  }

  private async reconnect(): Promise<void> {
    this.clientNow?.close();
    await this.forward?.stop();
    if (this.forward) this.reconnects++;
    this.forward = await portForward(
      this.cluster,
      this.namespace,
      `svc/${this.service}`,
      this.port,
    );
    this.clientNow = orchestratorClient(this.forward.port, this.token);
  }

  /**
   * Runs `call` until it succeeds or fails with a status other than UNAVAILABLE (then it
   * throws), at most `attempts` times, reconnecting after every UNAVAILABLE.
   */
  async retrying<T>(
    method: string,
    call: (c: RunnerServiceClient) => Promise<T>,
    attempts = 60,
  ): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await call(await this.client());
      } catch (err) {
        const e = err as ServiceError;
        if (typeof e.code !== 'number') throw err;
        this.failures.push({ method, code: e.code, details: e.details });
        if (e.code !== status.UNAVAILABLE || i >= attempts) throw err;
        await this.reconnect().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Exec to its end; a stream that ends with a non-OK status is a failed attempt. */
  exec(start: DeepPartial<ExecStartRequest>): Promise<ExecOutcome> {
    return this.retrying('exec', async (c) => {
      const outcome = await exec(c, start);
      if (outcome.code !== status.OK) {
        throw Object.assign(new Error(outcome.details), {
          code: outcome.code,
          details: outcome.details,
        });
      }
      return outcome;
    });
  }

  async close(): Promise<void> {
    this.clientNow?.close();
    await this.forward?.stop();
  }
}
