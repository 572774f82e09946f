import type { z } from 'zod';
import { BadInputError } from '../../protocols/errors.ts';

/** Renders zod issues as `file: field.path: message` lines a person can fix. */
export function formatIssues(source: string, issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
      return `${source}: ${path}: ${issue.message}`;
    })
    .join('\n');
}

/** Parses `input` with `schema`, or throws a BadInputError naming the source and each bad field. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown, source: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new BadInputError(formatIssues(source, result.error.issues));
  return result.data;
}
