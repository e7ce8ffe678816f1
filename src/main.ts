// Entry point of `npm start`. V8's compile cache is enabled before anything else is loaded:
// compiling the modules (fastify, @medplum/core, fhirpath, PGlite and ours) is a third of a cold
// start, and the cache (in the OS temporary folder, NODE_COMPILE_CACHE to move it) makes the next
// starts skip it. Then the server itself (serve.ts).
import { enableCompileCache } from 'node:module';

enableCompileCache();
await import('./serve.ts');
