/** `pctl audit search` (a table, or JSON lines for export). */
import { stringOption, type Invocation } from '../command.ts';
import { outputFormat, renderTable } from '../output.ts';
import { withAuth } from './connect.ts';

interface EventView {
  time: string;
  type: string;
  outcome: string;
  identity: { user?: string; host?: string };
  resource?: { kind: string; name: string };
  reason?: string;
}

export async function auditSearch(invocation: Invocation): Promise<number> {
  const format = invocation.options.format === 'jsonl' ? 'jsonl' : outputFormat(invocation.options.format);
  return withAuth(invocation, async ({ client }) => {
    const types = invocation.options.type as string[] | undefined;
    const response = await client.searchAudit({
      from: stringOption(invocation, 'from') ?? '',
      to: stringOption(invocation, 'to') ?? '',
      types: (types ?? []).flatMap((t) => t.split(',')),
      user: stringOption(invocation, 'user') ?? '',
      limit: Number(stringOption(invocation, 'limit') ?? 100),
      order: stringOption(invocation, 'order') ?? 'desc',
      cluster: stringOption(invocation, 'cluster') ?? '',
    });
    if (format === 'jsonl') {
      for (const line of response.eventsJson) process.stdout.write(line + '\n');
      return 0;
    }
    const events = response.eventsJson.map((line) => JSON.parse(line) as EventView);
    if (format === 'json') process.stdout.write(JSON.stringify(events, null, 2) + '\n');
    else if (format === 'yaml') process.stdout.write((await import('yaml')).stringify(events));
    else {
      process.stdout.write(
        renderTable(
          ['TIME', 'TYPE', 'OUTCOME', 'WHO', 'RESOURCE', 'REASON'],
          events.map((e) => [e.time, e.type, e.outcome, e.identity.user ?? e.identity.host ?? '', e.resource ? `${e.resource.kind}/${e.resource.name}` : '', e.reason ?? '']),
          'no events match',
        ),
      );
    }
    return 0;
  });
}
