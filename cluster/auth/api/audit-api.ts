/** The audit log over the API: search for admins and auditors, emit for hosts. */
import { setImmediate } from 'node:timers/promises';
import type { AuthService } from '../../api/gen/postern/auth/v1/auth_pb.ts';
import type { ServiceHandlers } from '../../api/grpc-glue.ts';
import { BadInputError } from '../../../protocols/errors.ts';
import { parseWith } from '../../common/validation.ts';
import { parseDuration } from '../../common/duration.ts';
import { auditInputSchema, type AuditEventInput } from '../audit/audit-event.ts';
import type { AuthDeps, CallContext } from './auth-deps.ts';

type Handlers = ServiceHandlers<(typeof AuthService)['method'], CallContext>;

const maxSearchLimit = 10_000;

/** Most events one EmitAudit call may carry. */
export const maxEmittedEvents = 500;
/** Events parsed between two turns of the event loop. */
const parseSlice = 50;

/** The audit handlers. */
export function auditApi(deps: AuthDeps): Pick<Handlers, 'searchAudit' | 'emitAudit'> {
  return {
    async searchAudit(request, ctx) {
      // A leaf's proxies read the events about root users, to forward them to the root.
      const proxy = ctx.identity?.kind === 'host' && ctx.identity.systemRoles.includes('proxy');
      if (!proxy) await deps.authorizer.requireResource(ctx, 'event', 'list');
      const wanted = request.limit > 0 ? Math.min(request.limit, maxSearchLimit) : 1000;
      // Events forwarded from a leaf carry fields.leaf_cluster; filter after a wider read.
      const limit = request.cluster ? maxSearchLimit : wanted;
      const order = request.order === 'asc' ? 'asc' : 'desc';
      const events = await deps.audit.search({
        from: parseTime(request.from, 'from', deps.clock.now()) ?? new Date(0),
        to: parseTime(request.to, 'to', deps.clock.now()) ?? new Date(deps.clock.now().getTime() + 60_000),
        types: request.types.length ? request.types : undefined,
        user: request.user || undefined,
        limit,
        order,
      });
      const selected = request.cluster ? events.filter((e) => e.fields['leaf_cluster'] === request.cluster).slice(0, wanted) : events;
      return { eventsJson: selected.map((e) => JSON.stringify(e)) };
    },

    async emitAudit(request, ctx) {
      await deps.authorizer.requireSystemRole(ctx, 'emit audit events', ['proxy', 'node', 'db', 'app', 'kube', 'desktop']);
      const texts = [...(request.eventJson ? [request.eventJson] : []), ...request.eventsJson];
      if (texts.length === 0) throw new BadInputError('audit event: none given (event_json or events_json)');
      if (texts.length > maxEmittedEvents) throw new BadInputError(`audit event: at most ${maxEmittedEvents} events per call, got ${texts.length}`);
      // Every event is checked before any is stored: a bad batch stores nothing.
      const events = [];
      for (let start = 0; start < texts.length; start += parseSlice) {
        // A full batch is several milliseconds of parsing; in slices, the proxy sharing this
        // process forwards connections in between instead of stalling behind it.
        if (start > 0) await setImmediate();
        for (let index = start; index < Math.min(texts.length, start + parseSlice); index++) events.push(parseEvent(texts[index]!, texts.length > 1 ? index : undefined));
      }
      // The emitting host is recorded by the auth server, not taken from the event.
      const emitter = ctx.identity?.kind === 'host' ? ctx.identity.hostId : 'unknown';
      // Parsed above: the log need not parse them again: one zod parse per database query event instead of two.
      await deps.audit.emitMany(events.map((event) => ({ ...event, fields: { ...event.fields, emitted_by: emitter } })), { checked: true });
      return {};
    },
  };
}

/** One emitted event's JSON, checked against the schema (`index` names it in a batch). */
function parseEvent(text: string, index: number | undefined): AuditEventInput {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BadInputError(`audit event${index !== undefined ? ` ${index}` : ''}: not JSON`);
  }
  return parseWith(auditInputSchema, raw, 'audit event');
}

/** An RFC 3339 time, or an age such as `2h` counted back from `now`. */
function parseTime(text: string, field: string, now: Date): Date | undefined {
  if (!text) return undefined;
  const date = /^\d/.test(text) && !text.includes('-') ? new Date(now.getTime() - parseDuration(text)) : new Date(text);
  if (Number.isNaN(date.getTime())) throw new BadInputError(`${field}: expected an RFC 3339 time or an age like 2h, got "${text}"`);
  return date;
}
