// Liveness and readiness for orchestrators: /healthz answers while the process runs,
// /readyz only while the database answers and the server is not shutting down.
import type { FastifyInstance } from 'fastify';
import type { Db } from '../store/db.ts';

export interface HealthState {
  shuttingDown: boolean;
}

export async function healthRoutes(app: FastifyInstance, opts: { db: Db; state: HealthState }): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (opts.state.shuttingDown) return reply.code(503).send({ status: 'shutting-down' });
    try {
      await opts.db.query('SELECT 1');
      return { status: 'ready', database: opts.db.kind };
    } catch {
      return reply.code(503).send({ status: 'database-unavailable' });
    }
  });
}
