const BLOCK = 512;
/** Long names and pax records are read whole; anything bigger is not an archive we take. */
const MAX_META_BYTES = 1024 * 1024;
/** Entry types a workload archive may hold: files, hard and symbolic links, directories. */
const ALLOWED_TYPES = new Set(['0', '1', '2', '5', '7']);

export interface TarEntry {
  path: string;
  type: string;
  linkPath?: string;
  size: number;
}

export class TarError extends Error {
  override readonly name = 'TarError';
}

function field(header: Buffer, offset: number, length: number): string {
  const raw = header.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? raw.length : end).toString('utf8');
}

function numeric(header: Buffer, offset: number, length: number, what: string, at: number): number {
  const raw = header.subarray(offset, offset + length);
  if (((raw[0] ?? 0) & 0x80) !== 0) {
    // GNU base-256: big-endian, high bit of the first byte set.
    let value = raw[0]! & 0x7f;
    for (let i = 1; i < raw.length; i++) {
      value = value * 256 + raw[i]!;
      if (value > Number.MAX_SAFE_INTEGER) throw new TarError(`${what} too large at offset ${at}`);
    }
    return value;
  }
  const text = field(header, offset, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`invalid ${what} at offset ${at}`);
  return parseInt(text, 8);
}

function checksumOk(header: Buffer, at: number): boolean {
  const stored = numeric(header, 148, 8, 'checksum', at);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === stored;
}

function paxRecords(data: Buffer, at: number): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space === -1) break;
    const length = Number(data.subarray(pos, space).toString('ascii'));
    if (!Number.isInteger(length) || length <= 0 || pos + length > data.length) {
      throw new TarError(`invalid pax header at offset ${at}`);
    }
    const record = data.subarray(space + 1, pos + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    pos += length;
  }
  return records;
}

function isZero(block: Buffer): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

interface Meta {
  type: string;
  at: number;
  size: number;
  chunks: Buffer[];
  length: number;
}

/**
 * Parses an uncompressed tar archive (ustar, GNU and pax) as it streams by, keeping only
 * the current header and metadata records. After the end-of-archive marker (the first
 * all-zero block) only zero bytes may follow: tar implementations that read on (BusyBox)
 * would otherwise extract entries no check saw.
 */
export class TarStreamParser {
  private offset = 0;
  private partial: Buffer[] = [];
  private partialLength = 0;
  /** Bytes of the current entry's data (and padding) still to skip. */
  private skip = 0;
  private meta?: Meta;
  private ended = false;
  private longName?: string;
  private longLink?: string;
  private pax?: Map<string, string>;

  constructor(private readonly onEntry: (entry: TarEntry) => void) {}

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.ended) {
        this.checkTrailer(chunk.subarray(pos));
        return;
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - pos);
        if (this.meta) this.collectMeta(chunk.subarray(pos, pos + n));
        this.skip -= n;
        this.offset += n;
        pos += n;
        if (this.skip === 0 && this.meta) this.finishMeta();
        continue;
      }
      const n = Math.min(BLOCK - this.partialLength, chunk.length - pos);
      this.partial.push(chunk.subarray(pos, pos + n));
      this.partialLength += n;
      pos += n;
      if (this.partialLength === BLOCK) {
        const header = Buffer.concat(this.partial, BLOCK);
        this.partial = [];
        this.partialLength = 0;
        this.header(header);
      }
    }
  }

  /** Checks that the archive ended cleanly. */
  end(): void {
    if (this.offset === 0 && this.partialLength === 0) throw new TarError('empty archive');
    if (this.ended) return;
    if (this.skip > 0 || this.partialLength > 0) {
      throw new TarError(`truncated archive at offset ${this.offset}`);
    }
  }

  private checkTrailer(rest: Buffer): void {
    const nonZero = rest.findIndex((b) => b !== 0);
    if (nonZero !== -1) {
      throw new TarError(`data after the end-of-archive marker at offset ${this.offset + nonZero}`);
    }
    this.offset += rest.length;
  }

  private header(header: Buffer): void {
    const at = this.offset;
    this.offset += BLOCK;
    if (isZero(header)) {
      this.ended = true;
      return;
    }
    if (!checksumOk(header, at)) throw new TarError(`bad header checksum at offset ${at}`);
    const size = numeric(header, 124, 12, 'size', at);
    const type = String.fromCharCode(header[156] ?? 0x30);
    this.skip = Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
      if (size > MAX_META_BYTES) throw new TarError(`metadata record too large at offset ${at}`);
      this.meta = { type, at: at + BLOCK, size, chunks: [], length: 0 };
      if (this.skip === 0) this.finishMeta();
      return;
    }
    const ustar = field(header, 257, 6) === 'ustar';
    const prefix = ustar ? field(header, 345, 155) : '';
    const name = field(header, 0, 100);
    const path = this.pax?.get('path') ?? this.longName ?? (prefix ? `${prefix}/${name}` : name);
    const link = this.pax?.get('linkpath') ?? this.longLink ?? field(header, 157, 100);
    const entry: TarEntry = { path, type: type === '\0' ? '0' : type, size };
    if (link !== '') entry.linkPath = link;
    this.longName = undefined;
    this.longLink = undefined;
    this.pax = undefined;
    this.onEntry(entry);
  }

  private collectMeta(data: Buffer): void {
    const meta = this.meta!;
    const wanted = Math.max(0, Math.min(data.length, meta.size - meta.length));
    if (wanted > 0) meta.chunks.push(Buffer.from(data.subarray(0, wanted)));
    meta.length += wanted;
  }

  private finishMeta(): void {
    const meta = this.meta!;
    this.meta = undefined;
    const data = Buffer.concat(meta.chunks, meta.length);
    switch (meta.type) {
      case 'L':
        this.longName = field(data, 0, data.length);
        return;
      case 'K':
        this.longLink = field(data, 0, data.length);
        return;
      case 'x':
        this.pax = paxRecords(data, meta.at);
        return;
      default: {
        const global = paxRecords(data, meta.at);
        if (global.has('path') || global.has('linkpath')) {
          throw new TarError('global pax path headers are not supported');
        }
      }
    }
  }
}

/** Parses the headers of a whole uncompressed tar archive. */
export function listTarEntries(archive: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  const parser = new TarStreamParser((e) => entries.push(e));
  parser.push(archive);
  parser.end();
  return entries;
}

function escapes(path: string): boolean {
  return path.startsWith('/') || path.split('/').includes('..');
}

/**
 * Why one entry may not be extracted, or undefined: entries (and link targets) must stay
 * inside the target directory, so absolute paths and `..` components are refused; names
 * with control characters (the extraction script reads names line by line) and device or
 * FIFO entries are refused too.
 */
export function entryProblem(entry: TarEntry): string | undefined {
  const name = JSON.stringify(entry.path);
  if (entry.path === '') return 'an entry has an empty name';
  if (escapes(entry.path)) return `entry ${name} leaves the target directory`;
  if (/[\x00-\x1f\x7f]/.test(entry.path)) return `entry ${name} has a control character`;
  if (!ALLOWED_TYPES.has(entry.type)) {
    return `entry ${name} has type ${JSON.stringify(entry.type)}: only files, directories and links are allowed`;
  }
  if (
    (entry.type === '1' || entry.type === '2') &&
    entry.linkPath !== undefined &&
    escapes(entry.linkPath)
  ) {
    return `link ${name} points outside the target directory (${JSON.stringify(entry.linkPath)})`;
  }
  return undefined;
}

/** A streaming check of an archive: `push` and `end` throw a TarError naming the problem. */
export class ArchiveChecker {
  private readonly parser = new TarStreamParser((entry) => {
    const problem = entryProblem(entry);
    if (problem) throw new TarError(problem);
  });

  push(chunk: Buffer): void {
    this.parser.push(chunk);
  }

  end(): void {
    this.parser.end();
  }
}

/** Why a whole archive may not be extracted, or undefined. */
export function archiveProblem(archive: Buffer): string | undefined {
  const checker = new ArchiveChecker();
  try {
    checker.push(archive);
    checker.end();
  } catch (err) {
    return err instanceof TarError ? err.message : 'unreadable archive';
  }
  return undefined;
}
