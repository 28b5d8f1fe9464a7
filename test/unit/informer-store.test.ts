import type { KubeObject } from '../../src/kube/client.ts';
import { compareResourceVersions, InformerStore } from '../../src/kube/informer-store.ts';

const KEY = 'ns/a';
const obj = (
  resourceVersion: string,
  uid = 'u1',
  v = resourceVersion,
): KubeObject & { v: string } => ({
  metadata: { namespace: 'ns', name: 'a', uid, resourceVersion },
  v,
});
const versionIn = (store: InformerStore<KubeObject>): string | undefined =>
  store.get(KEY)?.metadata?.resourceVersion;

describe('compareResourceVersions', () => {
  it('orders unsigned integers numerically, beyond what a double holds', () => {
    expect(compareResourceVersions('9', '10')).toBe(-1);
    expect(compareResourceVersions('10', '9')).toBe(1);
    expect(compareResourceVersions('42', '42')).toBe(0);
    expect(compareResourceVersions('18446744073709551615', '18446744073709551614')).toBe(1);
  });

  it('orders nothing that is not one', () => {
    for (const [a, b] of [
      ['abc', '1'],
      ['1', '0x2'],
      ['01', '1'],
      ['-1', '2'],
      ['', '1'],
      [undefined, '1'],
    ])
      expect(compareResourceVersions(a, b)).toBeUndefined();
  });
});

describe('InformerStore: writes this process made ahead of the watch', () => {
  it('takes a write of an object it does not hold, and one newer than what it holds', () => {
    const store = new InformerStore<KubeObject>();
    expect(store.write(KEY, obj('10'))).toEqual({ type: 'add', obj: obj('10') });
    expect(store.write(KEY, obj('12'))).toEqual({ type: 'update', old: obj('10'), obj: obj('12') });
    expect(versionIn(store)).toBe('12');
  });

  it('refuses a write that is not newer, that it cannot order, or of another object of that name', () => {
    const store = new InformerStore<KubeObject>();
    store.event('ADDED', KEY, obj('10'));
    expect(store.write(KEY, obj('10', 'u1', 'same'))).toBeUndefined();
    expect(store.write(KEY, obj('9'))).toBeUndefined();
    expect(store.write(KEY, obj('x11'))).toBeUndefined();
    expect(store.write(KEY, obj('11', 'u2'))).toBeUndefined();
    expect(store.get(KEY)).toEqual(obj('10'));
    const opaque = new InformerStore<KubeObject>();
    opaque.event('ADDED', KEY, obj('abc'));
    expect(opaque.write(KEY, obj('def'))).toBeUndefined();
    // Nothing held, nothing to compare: taken.
    expect(new InformerStore<KubeObject>().write(KEY, obj('abc'))).toEqual({
      type: 'add',
      obj: obj('abc'),
    });
  });

  it('the watch event of the written version changes nothing; a later one does', () => {
    const store = new InformerStore<KubeObject>();
    store.write(KEY, obj('10'));
    expect(store.event('ADDED', KEY, obj('10'))).toBeUndefined();
    expect(store.event('MODIFIED', KEY, obj('11'))).toEqual({
      type: 'update',
      old: obj('10'),
      obj: obj('11'),
    });
  });

  it('an event older than the write leaves the write in place until the watch reaches it', () => {
    const store = new InformerStore<KubeObject>();
    store.event('ADDED', KEY, obj('5'));
    store.write(KEY, obj('10'));
    expect(store.event('MODIFIED', KEY, obj('7'))).toBeUndefined();
    expect(versionIn(store)).toBe('10');
    expect(store.event('MODIFIED', KEY, obj('10'))).toBeUndefined();
    // Confirmed: from here the watch is the truth again.
    expect(store.event('MODIFIED', KEY, obj('11'))).toEqual({
      type: 'update',
      old: obj('10'),
      obj: obj('11'),
    });
  });

  it('a written object whose version cannot be ordered is replaced by the next event', () => {
    const store = new InformerStore<KubeObject>();
    store.write(KEY, obj('abc'));
    expect(store.event('ADDED', KEY, obj('abc'))).toBeUndefined();
    store.write(KEY, obj('def')); // refused: not orderable against what is held
    expect(store.event('MODIFIED', KEY, obj('ghi'))).toEqual({
      type: 'update',
      old: obj('abc'),
      obj: obj('ghi'),
    });
  });

  it('a deletion removes a written object, confirmed or not', () => {
    const store = new InformerStore<KubeObject>();
    store.write(KEY, obj('10'));
    expect(store.event('DELETED', KEY, obj('12'))).toEqual({ type: 'delete', obj: obj('12') });
    expect(store.get(KEY)).toBeUndefined();
    // Nothing is left of the write: the next object of that name comes as any other.
    expect(store.event('ADDED', KEY, obj('9', 'u2'))).toEqual({ type: 'add', obj: obj('9', 'u2') });
  });

  it('a relist older than the write keeps it; one at or past it is the truth', () => {
    const store = new InformerStore<KubeObject>();
    const other: KubeObject = { metadata: { namespace: 'ns', name: 'b', resourceVersion: '3' } };
    store.event('ADDED', 'ns/b', other);
    store.write(KEY, obj('10'));
    // Listed before the write: the object is not in it, and stays.
    expect(store.replace(new Map([['ns/b', other]]), '8')).toEqual([]);
    expect(versionIn(store)).toBe('10');
    // Still unconfirmed: an older event does not replace it.
    expect(store.event('MODIFIED', KEY, obj('9'))).toBeUndefined();
    // Listed with the write: no change.
    expect(
      store.replace(
        new Map([
          [KEY, obj('10')],
          ['ns/b', other],
        ]),
        '10',
      ),
    ).toEqual([]);
    // Listed after it was deleted: deleted.
    store.write(KEY, obj('11'));
    expect(store.replace(new Map([['ns/b', other]]), '12')).toEqual([
      { type: 'delete', obj: obj('11') },
    ]);
    expect(store.get(KEY)).toBeUndefined();
  });

  it('a relist whose version cannot be ordered is the truth', () => {
    const store = new InformerStore<KubeObject>();
    store.write(KEY, obj('10'));
    expect(store.replace(new Map(), 'opaque')).toEqual([{ type: 'delete', obj: obj('10') }]);
  });

  it('keeps indexes in step with written objects', () => {
    const store = new InformerStore<KubeObject & { v: string }>();
    store.addIndex('v', (o) => [o.v]);
    store.write(KEY, obj('10', 'u1', 'first'));
    store.write(KEY, obj('11', 'u1', 'second'));
    expect(store.byIndex('v', 'first')).toEqual([]);
    expect(store.byIndex('v', 'second')).toHaveLength(1);
    store.event('DELETED', KEY, obj('12', 'u1', 'second'));
    expect(store.byIndex('v', 'second')).toEqual([]);
  });
});
