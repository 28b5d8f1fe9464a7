import { describe, expect, it } from '@jest/globals';
import type { GatewayClient } from '../../src/runner/gateway-client.ts';
import { GatewayClients, type GatewayClientKey } from '../../src/runner/gateway-clients.ts';

function recordingFactory() {
  const made: Array<{ url: string; closed: boolean }> = [];
  const factory = (url: string): GatewayClient => {
    if (url === 'bad') throw new Error('invalid gateway URL');
    const entry = { url, closed: false };
    made.push(entry);
    return { close: () => (entry.closed = true), url } as unknown as GatewayClient;
  };
  return { made, factory };
}

const key = (over: Partial<GatewayClientKey> = {}): GatewayClientKey => ({
  runnerName: 'r',
  runnerUid: 'u1',
  url: 'grpcs://gw:443',
  caHash: '',
  ...over,
});

describe('GatewayClients (one gateway client per Runner)', () => {
  it('reuses the client while the Runner, URL and CA stay the same', () => {
    const { made, factory } = recordingFactory();
    const clients = new GatewayClients(factory);
    expect(clients.get(key())).toBe(clients.get(key()));
    expect(made).toHaveLength(1);
  });

  it('replaces and closes the client when the URL, the CA or the Runner (uid) changes', () => {
    const { made, factory } = recordingFactory();
    const clients = new GatewayClients(factory);
    clients.get(key());
    clients.get(key({ caHash: 'ca' }));
    clients.get(key({ caHash: 'ca', runnerUid: 'u2' }));
    clients.get(key({ caHash: 'ca', runnerUid: 'u2', url: 'grpcs://other:443' }));
    expect(made.map((m) => m.closed)).toEqual([true, true, true, false]);
  });

  it('keeps the current client when a new one cannot be made', () => {
    const { made, factory } = recordingFactory();
    const clients = new GatewayClients(factory);
    const current = clients.get(key());
    expect(() => clients.get(key({ url: 'bad' }))).toThrow('invalid gateway URL');
    expect(made[0]?.closed).toBe(false);
    expect(clients.get(key())).toBe(current);
  });

  it('closes a forgotten Runner’s client, and all of them on closeAll', () => {
    const { made, factory } = recordingFactory();
    const clients = new GatewayClients(factory);
    clients.get(key());
    clients.get(key({ runnerName: 'other' }));
    clients.close('r');
    expect(made.map((m) => m.closed)).toEqual([true, false]);
    clients.closeAll();
    expect(made.map((m) => m.closed)).toEqual([true, true]);
  });
});
