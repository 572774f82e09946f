import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadInputError } from '../../../protocols/errors.ts';
import { compileRegex, compileSelector, formatLabels, isRegexValue, matchLabels } from './label-matcher.ts';

describe('matchLabels', () => {
  it('matches nothing with an empty selector', () => {
    assert.equal(matchLabels({}, { env: 'prod' }), false);
    assert.equal(matchLabels({}, {}), false);
  });

  it("matches everything with '*': '*', even no labels", () => {
    assert.equal(matchLabels({ '*': '*' }, {}), true);
    assert.equal(matchLabels({ '*': ['*'] }, { env: 'prod' }), true);
  });

  it('matches literal values exactly', () => {
    assert.equal(matchLabels({ env: 'prod' }, { env: 'prod' }), true);
    assert.equal(matchLabels({ env: 'prod' }, { env: 'production' }), false);
    assert.equal(matchLabels({ env: 'prod' }, { team: 'prod' }), false);
  });

  it('requires every key to match', () => {
    const selector = { env: 'prod', team: 'web' };
    assert.equal(matchLabels(selector, { env: 'prod', team: 'web', extra: 'x' }), true);
    assert.equal(matchLabels(selector, { env: 'prod', team: 'db' }), false);
    assert.equal(matchLabels(selector, { env: 'prod' }), false);
  });

  it('treats a list as any-of', () => {
    const selector = { env: ['staging', 'dev'] };
    assert.equal(matchLabels(selector, { env: 'dev' }), true);
    assert.equal(matchLabels(selector, { env: 'staging' }), true);
    assert.equal(matchLabels(selector, { env: 'prod' }), false);
  });

  it("requires the key to be present for a '*' value", () => {
    assert.equal(matchLabels({ env: '*' }, { env: 'anything' }), true);
    assert.equal(matchLabels({ env: '*' }, { team: 'web' }), false);
  });

  it('anchors regexes as a whole', () => {
    const selector = { env: '^prod-[0-9]+$' };
    assert.equal(matchLabels(selector, { env: 'prod-12' }), true);
    assert.equal(matchLabels(selector, { env: 'xprod-12' }), false);
    assert.equal(matchLabels(selector, { env: 'prod-12x' }), false);
    // Without wrapping, ^a|b$ would match "ab" (starts with a).
    assert.equal(matchLabels({ k: '^a|b$' }, { k: 'ab' }), false);
    assert.equal(matchLabels({ k: '^a|b$' }, { k: 'b' }), true);
  });

  it('treats values with regex characters but no anchors as literals', () => {
    assert.equal(matchLabels({ env: 'prod.*' }, { env: 'production' }), false);
    assert.equal(matchLabels({ env: 'prod.*' }, { env: 'prod.*' }), true);
  });

  it('does not read inherited properties as labels', () => {
    assert.equal(matchLabels({ constructor: '*' }, {}), false);
  });

  it('accepts a compiled selector', () => {
    const compiled = compileSelector({ env: ['^st.*$', 'dev'] });
    assert.equal(matchLabels(compiled, { env: 'staging' }), true);
    assert.equal(matchLabels(compiled, { env: 'prod' }), false);
  });
});

describe('compileRegex', () => {
  it('caches compiled regexes', () => {
    assert.equal(compileRegex('^cache-me$'), compileRegex('^cache-me$'));
  });

  it('refuses invalid patterns with the reason', () => {
    assert.throws(() => compileRegex('^(prod$'), (error: unknown) => {
      assert.ok(error instanceof BadInputError);
      assert.match(error.message, /invalid regular expression "\^\(prod\$": Unterminated group/);
      return true;
    });
  });

  it('refuses values that are not ^…$', () => {
    assert.throws(() => compileRegex('prod'), BadInputError);
    assert.equal(isRegexValue('^'), false);
    assert.equal(isRegexValue('^$'), true);
  });
});

describe('formatLabels', () => {
  it('sorts pairs and names the empty case', () => {
    assert.equal(formatLabels({ team: 'web', env: 'prod' }), 'env=prod,team=web');
    assert.equal(formatLabels({}), 'no labels');
  });
});
