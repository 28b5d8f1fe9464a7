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
import { call } from '../fixtures/grpc-harness.ts';
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

  /**
   * Connects to `target` (e.g. `pod/NAME`: the Pod the Service happened to route to);
   * reconnects after it go to the Service again.
   */
  async pinTo(target: string): Promise<void> {
    await this.reconnect(target);
    this.reconnects = 0;
  }

  private async reconnect(target = `svc/${this.service}`): Promise<void> {
    this.clientNow?.close();
    await this.forward?.stop();
    if (this.forward) this.reconnects++;
    this.forward = await portForward(this.cluster, this.namespace, target, this.port);
    this.clientNow = orchestratorClient(this.forward.port, this.token);
  }

  /**
   * Calls InspectWorkload of `id` every 250 ms (retrying as above) until `stop` is called;
   * `stop` resolves with whether each answer said running, or with the error that ended it.
   */
  pollInspect(id: string): { stop(): Promise<{ running: boolean[]; error?: unknown }> } {
    let polling = true;
    const running: boolean[] = [];
    const done = (async () => {
      while (polling) {
        const inspect = await this.retrying('inspectWorkload', (c) =>
          call(c, 'inspectWorkload', { workloadId: id }),
        );
        running.push(inspect.stateRunning);
        await new Promise((r) => setTimeout(r, 250));
      }
      return { running };
    })().catch((error: unknown) => ({ running, error }));
    return {
      stop() {
        polling = false;
        return done;
      },
    };
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
