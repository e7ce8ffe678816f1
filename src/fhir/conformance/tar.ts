// A minimal reader for .tgz archives (FHIR NPM packages): gunzip, then walk the 512-byte tar
// headers. Regular files only (directories, links and devices are skipped); long names from
// ustar prefixes, GNU 'L' records and PAX 'x' headers (path=) are honoured.
import { gunzipSync } from 'node:zlib';

const BLOCK = 512;

function text(buf: Buffer, start: number, length: number): string {
  const field = buf.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

function size(buf: Buffer, start: number): number {
  // Base-256 (GNU) when the high bit of the first byte is set, else octal text.
  if (buf[start]! & 0x80) {
    let n = 0;
    for (let i = start + 1; i < start + 12; i++) n = n * 256 + buf[i]!;
    return n;
  }
  const octal = text(buf, start, 12).trim();
  return octal ? parseInt(octal, 8) : 0;
}

/** PAX extended header records: "<len> key=value\n"... */
function paxPath(data: Buffer): string | undefined {
  let pos = 0;
  let path: string | undefined;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = parseInt(data.subarray(pos, space).toString('ascii'), 10);
    if (!(len > 0)) break;
    const record = data.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0 && record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    pos += len;
  }
  return path;
}

/** The regular files of a tar archive (gzip-compressed or not), path → content. */
export function readTarGz(buffer: Buffer): Map<string, Buffer> {
  const tar = buffer.length > 2 && buffer[0] === 0x1f && buffer[1] === 0x8b ? gunzipSync(buffer) : buffer;
  const files = new Map<string, Buffer>();
  let pos = 0;
  let longName: string | undefined;
  while (pos + BLOCK <= tar.length) {
    const header = tar.subarray(pos, pos + BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    const length = size(header, 124);
    const type = String.fromCharCode(header[156] || 0x30);
    const dataStart = pos + BLOCK;
    const data = tar.subarray(dataStart, dataStart + length);
    pos = dataStart + Math.ceil(length / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = text(data, 0, data.length);
      continue;
    }
    if (type === 'x') {
      longName = paxPath(data) ?? longName;
      continue;
    }
    if (type === 'g') continue; // global PAX header
    let name = text(header, 0, 100);
    if (text(header, 257, 5) === 'ustar') {
      const prefix = text(header, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (longName !== undefined) {
      name = longName;
      longName = undefined;
    }
    if (type === '0' || type === '\0' || type === '7') files.set(name, Buffer.from(data));
  }
  return files;
}
