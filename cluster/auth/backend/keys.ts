import { BadInputError } from '../../../protocols/errors.ts';
import type { ItemInput, RangeOptions } from './backend.ts';

/**
 * Input checks and key arithmetic shared by every Backend implementation, so that
 * SQLite and PostgreSQL accept and order exactly the same keys.
 *
 * Keys are ordered by Unicode code point (what SQLite's BINARY collation and
 * PostgreSQL's "C" collation give on UTF-8). A key must be a non-empty, well-formed
 * string without NUL: a lone surrogate cannot round-trip through UTF-8, and
 * PostgreSQL rejects NUL in text.
 */

const maxCodePoint = 0x10ffff;

/** Throws BadInputError unless `key` is a usable key. */
export function checkKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new BadInputError(`backend ${what} must be a non-empty string`);
  }
  _checkText(key, what);
}

/** Throws BadInputError unless `prefix` is a usable prefix (the empty prefix means everything). */
export function checkPrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') throw new BadInputError('backend prefix must be a string');
  _checkText(prefix, 'prefix');
}

/** Throws BadInputError unless the item to write has a valid key, a string value and a valid expiry. */
export function checkInput(input: ItemInput): void {
  if (input === null || typeof input !== 'object') throw new BadInputError('backend item must be an object');
  checkKey(input.key);
  if (typeof input.value !== 'string') throw new BadInputError('backend item value must be a string');
  if (input.expires !== undefined && !(input.expires instanceof Date && Number.isFinite(input.expires.getTime()))) {
    throw new BadInputError('backend item expires must be a valid Date (or absent for no expiry)');
  }
}

/** Throws BadInputError unless `revision` is a revision a backend could have assigned. */
export function checkRevision(revision: unknown): asserts revision is number {
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 1) {
    throw new BadInputError('backend expected revision must be a positive integer');
  }
}

/** Throws BadInputError unless the range options are valid. */
export function checkRangeOptions(options: RangeOptions): void {
  const { limit, after } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new BadInputError('backend range limit must be a non-negative integer');
  }
  if (after !== undefined) checkKey(after, 'range after');
}

/**
 * The smallest string greater than every string that starts with `prefix`, or
 * undefined when there is none (the empty prefix, or one made only of U+10FFFF).
 * `key >= prefix AND key < upper` then selects exactly the keys under the prefix,
 * whatever `%`, `_` or `\` it holds, and an index on the key serves the query.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const codePoints = Array.from(prefix);
  while (codePoints.length > 0) {
    const last = codePoints.pop()!.codePointAt(0)!;
    if (last === maxCodePoint) continue;
    // Skip the surrogate block: those are not characters and do not encode in UTF-8.
    const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
    return codePoints.join('') + String.fromCodePoint(next);
  }
  return undefined;
}

function _checkText(text: string, what: string): void {
  if (!text.isWellFormed()) throw new BadInputError(`backend ${what} must not contain lone surrogates`);
  if (text.includes('\0')) throw new BadInputError(`backend ${what} must not contain NUL`);
}
