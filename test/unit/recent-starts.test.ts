import { describe, expect, it, jest } from '@jest/globals';
import type { ShimCaches, Workload } from '../../src/grpc/caches.ts';
import { RecentStarts } from '../../src/grpc/recent-starts.ts';

function fakeCaches(): {
  caches: ShimCaches;
  cached: Map<string, Workload>;
  emit: (kind: 'onAdd' | 'onDelete', w: Workload) => void;
} {
  const cached = new Map<string, Workload>();
  const handlers: Array<Partial<Record<'onAdd' | 'onDelete', (w: Workload) => void>>> = [];
  const caches = {
    workloads: { addHandler: (h: (typeof handlers)[number]) => handlers.push(h) },
    workload: (name: string) => cached.get(name),
  } as unknown as ShimCaches;
  return { caches, cached, emit: (kind, w) => handlers.forEach((h) => h[kind]?.(w)) };
}

const workload = (name: string): Workload =>
  ({ metadata: { name, uid: `uid-${name}` }, spec: {} }) as unknown as Workload;

describe('RecentStarts', () => {
  it('serves a created workload until the cache shows it', () => {
    const { caches, emit } = fakeCaches();
    const recent = new RecentStarts(caches);
    const w = workload('a');
    recent.note(w);
    expect(recent.get('a')).toBe(w);
    emit('onAdd', w);
    expect(recent.get('a')).toBeUndefined();
  });

  it('forgets on deletion, on forget() and after the TTL', () => {
    jest.useFakeTimers();
    try {
      const { caches, emit } = fakeCaches();
      const recent = new RecentStarts(caches, 1000);
      recent.note(workload('a'));
      emit('onDelete', workload('a'));
      expect(recent.get('a')).toBeUndefined();
      recent.note(workload('b'));
      recent.forget('b');
      expect(recent.get('b')).toBeUndefined();
      recent.note(workload('c'));
      jest.advanceTimersByTime(1001);
      expect(recent.get('c')).toBeUndefined();
      expect(recent.size).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });

  it('notes nothing the cache already shows (the watch was faster than the answer)', () => {
    const { caches, cached } = fakeCaches();
    const recent = new RecentStarts(caches);
    cached.set('a', workload('a'));
    recent.note(workload('a'));
    expect(recent.size).toBe(0);
  });
});
