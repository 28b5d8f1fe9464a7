import { getEventListeners } from 'node:events';
import { Backoff, sleep } from '../../src/kube/backoff.ts';

test('10,000 retries on one abort signal leave no listener behind', async () => {
  const controller = new AbortController();
  for (let round = 0; round < 1_000; round++) {
    await Promise.all(Array.from({ length: 10 }, () => sleep(0, controller.signal)));
  }
  expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
});

test('an abort ends the sleep at once and removes its listener', async () => {
  const controller = new AbortController();
  const slept = sleep(3_600_000, controller.signal);
  expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
  controller.abort();
  await slept;
  expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
});

test('backoff doubles from 800 ms to the 30 s cap and resets', () => {
  const b = new Backoff();
  const bases = [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000];
  for (const base of bases) {
    const d = b.next();
    expect(d).toBeGreaterThanOrEqual(base * 0.8);
    expect(d).toBeLessThanOrEqual(base * 1.2);
  }
  b.reset();
  expect(b.next()).toBeLessThanOrEqual(800 * 1.2);
});
