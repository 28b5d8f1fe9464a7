import { createGzip } from 'node:zlib';
import { tarArchive } from '../fixtures/bad-input/corpus.ts';

/** A gzip stream of one tar entry of `size` zero bytes, made without holding it in memory. */
export async function gzipBomb(size: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gzip.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((resolve) => gzip.on('end', resolve));
  const head = tarArchive([{ path: 'bomb', content: '' }]).subarray(0, 512);
  head.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  head.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of head) sum += b;
  head.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  gzip.write(head);
  const zeros = Buffer.alloc(1024 * 1024);
  for (let left = size; left > 0; left -= zeros.length) {
    if (!gzip.write(left >= zeros.length ? zeros : zeros.subarray(0, left))) {
      await new Promise((resolve) => gzip.once('drain', resolve));
    }
  }
  gzip.end(Buffer.alloc(1024));
  await done;
  return Buffer.concat(out);
}
