/**
 * Durations as roles and tokens write them: `30s`, `15m`, `8h`, `7d`, or compound
 * `1h30m` (units ms, s, m, h, d; largest first is customary but not required).
 */
import { BadInputError } from '../../protocols/errors.ts';

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const wholePattern = /^(?:\d+(?:ms|s|m|h|d))+$/;
const partPattern = /(\d+)(ms|s|m|h|d)/g;

/** Parses a duration string to milliseconds; throws BadInputError naming the accepted forms. */
export function parseDuration(text: string): number {
  if (!wholePattern.test(text)) {
    throw new BadInputError(`"${text}" is not a duration; write e.g. 30m, 8h, 1h30m or 7d (units ms, s, m, h, d)`);
  }
  let total = 0;
  for (const [, amount, unit] of text.matchAll(partPattern)) total += Number(amount) * unitMs[unit!]!;
  if (!Number.isSafeInteger(total)) throw new BadInputError(`duration "${text}" is too large`);
  return total;
}

/** Renders milliseconds as the shortest compound duration (`1h30m`, `0s`). */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms']) {
    const size = unitMs[unit]!;
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}
