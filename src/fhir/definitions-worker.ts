// Worker entry: builds the compact definitions and hands them back as one JSON string.
import { parentPort } from 'node:worker_threads';
import { buildCompactDefinitions } from './definitions-build.ts';

parentPort!.postMessage(JSON.stringify(buildCompactDefinitions()));
