/**
 * Runs `fn(0..count-1)` with at most `concurrency` in flight. Failures are counted and the
 * first few kept; the pool keeps going (a benchmark reports errors instead of dying).
 */
export async function runPool(
  count: number,
  concurrency: number,
  fn: (index: number) => Promise<void>,
): Promise<{ errors: number; firstErrors: string[] }> {
  let next = 0;
  let errors = 0;
  const firstErrors: string[] = [];
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      try {
        await fn(i);
      } catch (err) {
        errors++;
        if (firstErrors.length < 5)
          firstErrors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, () => worker()),
  );
  return { errors, firstErrors };
}
