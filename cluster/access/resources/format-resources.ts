/**
 * Resources -> text for `pctl get` and the API: YAML (documents separated by `---`),
 * JSON (always an array, which parse-resources.ts reads back), or a plain-text table.
 */
import YAML from 'yaml';
import type { ResourceRegistry } from './registry.ts';
import type { Resource } from './resource.ts';

export type ResourceFormat = 'yaml' | 'json' | 'text';

export interface FormatResourcesOptions {
  /** Lets `text` output add each kind's one-line spec summary. */
  registry?: ResourceRegistry;
}

/** Renders resources as YAML, JSON or a text table; YAML and JSON parse back to the same resources. */
export function formatResources(
  resources: readonly Resource[],
  format: ResourceFormat,
  options: FormatResourcesOptions = {},
): string {
  switch (format) {
    case 'yaml':
      return resources.map((r) => YAML.stringify(r, { lineWidth: 0 })).join('---\n');
    case 'json':
      return `${JSON.stringify(resources, null, 2)}\n`;
    case 'text':
      return formatTable(resources, options.registry);
  }
}

/** Columns: KIND NAME LABELS EXPIRES SUMMARY, aligned with spaces; `-` for empty cells. */
function formatTable(resources: readonly Resource[], registry: ResourceRegistry | undefined): string {
  const rows = [['KIND', 'NAME', 'LABELS', 'EXPIRES', 'SUMMARY']];
  for (const r of resources) {
    const labels = Object.entries(r.metadata.labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .sort()
      .join(',');
    const kind = registry?.get(r.kind);
    const summary = kind?.summarize?.(r) ?? r.metadata.description ?? '';
    rows.push([r.kind, r.metadata.name, labels, r.metadata.expires ?? '', oneLine(summary)]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => (row[col] || '-').length)));
  return rows
    .map((row) =>
      row
        .map((cell, col) => (col === row.length - 1 ? cell || '-' : (cell || '-').padEnd(widths[col]!)))
        .join('  '),
    )
    .join('\n')
    .concat('\n');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
