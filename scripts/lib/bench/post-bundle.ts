// Sends one transaction Bundle to the server (return=minimal). A request that gets no HTTP
// answer at all (connection closed or reset) is sent again, at most twice, and reported in
// `retries`: the server may have stored it (more resources, not fewer).
export class IngestError extends Error {}

export async function postBundle(fhirBase: string, body: string, what: string, retries: string[], log: (s: string) => void): Promise<{ status: number; text: string }> {
  for (let attempt = 0; ; attempt++) {
    const sent = performance.now();
    try {
      const res = await fetch(fhirBase, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json', prefer: 'return=minimal' },
        body,
      });
      return { status: res.status, text: await res.text() };
    } catch (err) {
      const cause = (err as { cause?: { message?: string; code?: string } }).cause;
      const why = `${what} got no answer after ${Math.round(performance.now() - sent)} ms: ${(err as Error).message}` +
        (cause ? ` (${[cause.code, cause.message ?? String(cause)].filter(Boolean).join(' ')})` : '');
      if (attempt >= 2) throw new IngestError(`load: ${why}`);
      retries.push(why);
      log(`  retrying: ${why}`);
    }
  }
}
