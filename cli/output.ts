/** Output for people and for programs: aligned tables by default, `--format json|yaml` for scripts. */
import { stringify as toYaml } from 'yaml';
import { UsageError } from './command.ts';

export type OutputFormat = 'text' | 'json' | 'yaml';

/** Validates a `--format` value. */
export function outputFormat(value: unknown): OutputFormat {
  if (value === undefined) return 'text';
  if (value === 'text' || value === 'json' || value === 'yaml') return value;
  throw new UsageError(`--format must be one of text, json, yaml (got "${String(value)}")`);
}

/** Renders rows as an aligned table with a header; empty input prints a one-line note instead. */
export function renderTable(headers: string[], rows: string[][], emptyNote = 'nothing to show'): string {
  if (rows.length === 0) return `${emptyNote}\n`;
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

/** Prints data in the chosen format; `table` produces the text form. */
export function printData<T>(format: OutputFormat, data: T, table: (data: T) => string): void {
  if (format === 'json') process.stdout.write(JSON.stringify(data, null, 2) + '\n');
  else if (format === 'yaml') process.stdout.write(toYaml(data));
  else process.stdout.write(table(data));
}

/** Formats labels as `k=v,k2=v2`. */
export function formatLabels(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Parses `k=v` pairs (repeated or comma-separated) into a label map. */
export function parseLabels(values: string[] | string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  const list = (Array.isArray(values) ? values : values ? [values] : []).flatMap((v) => v.split(','));
  for (const pair of list) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`cannot parse label "${pair}": expected key=value`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}
