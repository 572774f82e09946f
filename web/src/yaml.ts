/** YAML text for the role editor (the same `yaml` package the CLI uses). */
import { stringify } from 'yaml';

export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 });
}
