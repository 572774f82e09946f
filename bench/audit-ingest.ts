/**
 * Audit ingestion micro-benchmark (`npm run bench -- audit-ingest`): what auth spends per
 * database query event, in process (no gRPC): the emitAudit handler's work (JSON.parse,
 * validation, redaction, id, JSON.stringify) and the SQLite write (WAL, synchronous=FULL),
 * in batches of 500 as the agent sends them. CPU microseconds per event (process.cpuUsage),
 * steadier than wall time on a shared machine. The last line is the figure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteBackend } from '../cluster/auth/backend/sqlite-backend.ts';
import { AuditLog } from '../cluster/auth/audit/audit-log.ts';
import { auditApi } from '../cluster/auth/api/audit-api.ts';
import type { AuthDeps, CallContext } from '../cluster/auth/api/auth-deps.ts';

const BATCH = 500;
const BATCHES = Number(process.env.AUDIT_BENCH_BATCHES ?? 60);

function _event(i: number): string {
  return JSON.stringify({
    type: 'db.query', outcome: 'success',
    identity: { user: 'bench', roles: ['bench-db'] },
    resource: { kind: 'db', name: 'pg' },
    fields: { protocol: 'postgres', db_user: 'alice', db_name: 'app', session_id: '123456789', message: 'query', statement: `SELECT abalance FROM pgbench_accounts WHERE aid = ${i};` },
  });
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-auditbench-'));
  const backend = SqliteBackend.open(path.join(dir, 'backend.db'));
  try {
    const audit = new AuditLog(backend, { cluster: 'bench' });
    const deps = { audit, authorizer: { requireSystemRole: async () => undefined } } as unknown as AuthDeps;
    const ctx = { identity: { kind: 'host', hostId: 'agent-1', systemRoles: ['node'] } } as unknown as CallContext;
    const api = auditApi(deps);
    const emit = (eventsJson: string[]): Promise<unknown> => (api.emitAudit as unknown as (r: object, c: CallContext) => Promise<unknown>)({ eventJson: '', eventsJson }, ctx);
    const batches = Array.from({ length: BATCHES }, (_, b) => Array.from({ length: BATCH }, (_, i) => _event(b * BATCH + i)));
    for (let i = 0; i < 5; i++) await emit(batches[i]!); // warm-up
    const before = process.cpuUsage();
    const started = process.hrtime.bigint();
    for (const batch of batches) await emit(batch);
    const cpu = process.cpuUsage(before);
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const events = BATCH * BATCHES;
    process.stdout.write(`${events} db.query events in batches of ${BATCH}: ${wallMs.toFixed(0)} ms wall\n`);
    process.stdout.write(`audit ingestion: ${(((cpu.user + cpu.system)) / events).toFixed(1)} us CPU per event (user ${(cpu.user / events).toFixed(1)}, system ${(cpu.system / events).toFixed(1)})\n`);
  } finally {
    backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
