// A Bundle of stored resources sent without a parse and a re-serialisation per entry: each
// entry's resource is a mark, replaced by the stored JSON text once the Bundle is serialised.
// Search and history send their pages this way, as reads send the stored text as it is; the
// stored text being Latin-1 (stored-json.ts), so is the answer.
import { randomBytes } from 'node:crypto';
import type { Bundle, Resource } from '@medplum/fhirtypes';

// Marks where stored JSON goes in the serialised Bundle; the nonce keeps any client-supplied
// string (an unknown parameter's name, echoed in the outcome) from ever looking like one.
const SPLICE_NONCE = randomBytes(8).toString('hex');
const SPLICE_RE = new RegExp(`"\\\\u0000${SPLICE_NONCE}:(\\d+)"`, 'g');

export class Splicer {
  readonly parts: string[] = [];
  mark(json: string): Resource {
    this.parts.push(json);
    return `\u0000${SPLICE_NONCE}:${this.parts.length - 1}` as unknown as Resource;
  }
  text(bundle: Bundle): string {
    return JSON.stringify(bundle).replace(SPLICE_RE, (_, i: string) => this.parts[Number(i)]);
  }
}
