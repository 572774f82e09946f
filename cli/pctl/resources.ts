/** `pctl get KIND[/NAME]`, `pctl create -f FILE [--force]`, `pctl rm KIND/NAME`. */
import { readFile } from 'node:fs/promises';
import { stringify as toYaml } from 'yaml';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { formatLabels, outputFormat, renderTable } from '../output.ts';
import { withAuth } from './connect.ts';

interface ResourceView {
  kind: string;
  version: string;
  metadata: { name: string; description?: string; labels?: Record<string, string>; expires?: string; revision?: number };
  spec: unknown;
}

function splitRef(ref: string | undefined, command: string): { kind: string; name: string } {
  if (!ref) throw new UsageError(`name what to ${command}: KIND or KIND/NAME, e.g. roles or role/access`);
  const slash = ref.indexOf('/');
  return slash < 0 ? { kind: ref, name: '' } : { kind: ref.slice(0, slash), name: ref.slice(slash + 1) };
}

export async function get(invocation: Invocation): Promise<number> {
  const ref = splitRef(invocation.positionals[0], 'get');
  const format = invocation.options.format === undefined ? 'text' : outputFormat(invocation.options.format);
  return withAuth(invocation, async ({ client }) => {
    const resources = JSON.parse((await client.getResources({ kind: ref.kind, name: ref.name })).resourcesJson) as ResourceView[];
    const clean = resources.map(({ metadata, ...rest }) => ({ ...rest, metadata: { ...metadata, revision: undefined } }));
    if (format === 'json') process.stdout.write(JSON.stringify(clean, null, 2) + '\n');
    else if (format === 'yaml') process.stdout.write(clean.map((r) => toYaml(JSON.parse(JSON.stringify(r)))).join('---\n'));
    else {
      process.stdout.write(
        renderTable(
          ['KIND', 'NAME', 'LABELS', 'DESCRIPTION'],
          resources.map((r) => [r.kind, r.metadata.name, formatLabels(r.metadata.labels), r.metadata.description ?? '']),
          `no ${ref.kind} found`,
        ),
      );
    }
    return 0;
  });
}

export async function create(invocation: Invocation): Promise<number> {
  const file = stringOption(invocation, 'file');
  if (!file) throw new UsageError('pass the resource file: pctl create -f role.yaml (use - for stdin)');
  const text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  return withAuth(invocation, async ({ client }) => {
    const response = await client.createResources({ text, upsert: Boolean(invocation.options.force), source: file === '-' ? 'stdin' : file });
    for (const name of response.created) process.stdout.write(`${invocation.options.force ? 'applied' : 'created'} ${name}\n`);
    return 0;
  });
}

export async function remove(invocation: Invocation): Promise<number> {
  const ref = splitRef(invocation.positionals[0], 'remove');
  if (!ref.name) throw new UsageError('name the resource: pctl rm KIND/NAME, e.g. pctl rm role/dev');
  return withAuth(invocation, async ({ client }) => {
    await client.deleteResource({ kind: ref.kind, name: ref.name });
    process.stdout.write(`${ref.kind}/${ref.name} deleted\n`);
    return 0;
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
