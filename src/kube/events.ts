import type { Logger } from 'pino';
import type { KubeClient, KubeObject, ResourceClient } from './client.ts';
import { EVENTS } from './resources.ts';
import { randomHex } from './random-ids.ts';
import { TokenBucket } from './token-bucket.ts';

/** Events have a budget of their own, so that a burst of them never delays reconciling. */
export const EVENTS_QPS = 50;
export const EVENTS_BURST = 100;

export interface EventSubject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
}

/** Records core/v1 Events, fire-and-forget: a failed Event never fails a reconcile. */
export class EventRecorder {
  private readonly events: ResourceClient<KubeObject>;
  private readonly limiter = new TokenBucket(EVENTS_QPS, EVENTS_BURST);

  constructor(
    client: KubeClient,
    private readonly logger: Logger,
    private readonly component = 'k8s-runner',
  ) {
    this.events = client.resource(EVENTS);
  }

  record(
    subject: EventSubject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    now = new Date(),
  ): void {
    const time = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const namespace = subject.metadata.namespace;
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${subject.metadata.name}.${randomHex(6)}`, namespace },
      involvedObject: {
        apiVersion: subject.apiVersion,
        kind: subject.kind,
        name: subject.metadata.name,
        namespace,
        uid: subject.metadata.uid,
        resourceVersion: subject.metadata.resourceVersion,
      },
      reason,
      message,
      type,
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.component,
      firstTimestamp: time,
      lastTimestamp: time,
      count: 1,
    };
    this.events.create(namespace, event, { limiter: this.limiter }).catch((err: unknown) => {
      this.logger.debug({ err: (err as Error).message, reason }, 'could not record an Event');
    });
  }
}
