const BLOCK = 512;

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

/** Parses the headers of an uncompressed tar archive (ustar, GNU and pax). */
export function listTarEntries(archive: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let offset = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Map<string, string> | undefined;
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) return entries;
    if (!checksumOk(header, offset)) throw new TarError(`bad header checksum at offset ${offset}`);
    const size = numeric(header, 124, 12, 'size', offset);
    const type = String.fromCharCode(header[156] ?? 0x30);
    const dataStart = offset + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > archive.length) throw new TarError(`truncated archive at offset ${offset}`);
    const data = archive.subarray(dataStart, dataEnd);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    switch (type) {
      case 'L':
        longName = field(data, 0, data.length);
        continue;
      case 'K':
        longLink = field(data, 0, data.length);
        continue;
      case 'x':
        pax = paxRecords(data, dataStart);
        continue;
      case 'g': {
        const global = paxRecords(data, dataStart);
        if (global.has('path') || global.has('linkpath')) {
          throw new TarError('global pax path headers are not supported');
        }
        continue;
      }
    }

    const ustar = field(header, 257, 6) === 'ustar';
    const prefix = ustar ? field(header, 345, 155) : '';
    const name = field(header, 0, 100);
    const path = pax?.get('path') ?? longName ?? (prefix ? `${prefix}/${name}` : name);
    const link = pax?.get('linkpath') ?? longLink ?? field(header, 157, 100);
    const entry: TarEntry = { path, type: type === '\0' ? '0' : type, size };
    if (link !== '') entry.linkPath = link;
    entries.push(entry);
    longName = undefined;
    longLink = undefined;
    pax = undefined;
  }
  if (archive.length === 0) throw new TarError('empty archive');
  if (offset < archive.length) throw new TarError(`truncated archive at offset ${offset}`);
  return entries;
}

function escapes(path: string): boolean {
  return path.startsWith('/') || path.split('/').includes('..');
}

/**
 * Why the archive may not be extracted, or undefined: entries (and link targets) must stay
 * inside the target directory, so absolute paths and `..` components are refused.
 */
export function archiveProblem(archive: Buffer): string | undefined {
  let entries: TarEntry[];
  try {
    entries = listTarEntries(archive);
  } catch (err) {
    return err instanceof TarError ? err.message : 'unreadable archive';
  }
  for (const entry of entries) {
    if (entry.path === '') return 'an entry has an empty name';
    if (escapes(entry.path))
      return `entry ${JSON.stringify(entry.path)} leaves the target directory`;
    if (
      (entry.type === '1' || entry.type === '2') &&
      entry.linkPath !== undefined &&
      escapes(entry.linkPath)
    ) {
      return `link ${JSON.stringify(entry.path)} points outside the target directory (${JSON.stringify(entry.linkPath)})`;
    }
  }
  return undefined;
}
