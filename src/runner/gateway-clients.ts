import { GatewayClient } from './gateway-client.ts';

/** Builds the gateway client of a Runner; https/grpcs URLs use TLS, verified with caPem when given. */
export type GatewayFactory = (url: string, caPem?: Buffer) => GatewayClient;

export const defaultGatewayFactory: GatewayFactory = (url, caPem) =>
  new GatewayClient({ url, caPem });

/** What a Runner's gateway client depends on: a change of any of them builds a new client. */
export interface GatewayClientKey {
  runnerName: string;
  runnerUid: string;
  url: string;
  caPem?: Buffer;
  /** Digest of caPem ('' without one). */
  caHash: string;
}

/**
 * One open gateway client per Runner, reused while the Runner (by uid), its gateway URL
 * and its CA stay the same; the client it replaces is closed.
 */
export class GatewayClients {
  private readonly clients = new Map<string, { key: string; client: GatewayClient }>();

  constructor(private readonly factory: GatewayFactory = defaultGatewayFactory) {}

  /** The Runner's client; throws when the URL or CA cannot make one. */
  get(want: GatewayClientKey): GatewayClient {
    const key = `${want.runnerUid}\0${want.url}\0${want.caHash}`;
    const current = this.clients.get(want.runnerName);
    if (current?.key === key) return current.client;
    const client = this.factory(want.url, want.caPem);
    current?.client.close();
    this.clients.set(want.runnerName, { key, client });
    return client;
  }

  close(runnerName: string): void {
    this.clients.get(runnerName)?.client.close();
    this.clients.delete(runnerName);
  }

  closeAll(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}
