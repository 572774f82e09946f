import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadInputError } from '../../../protocols/errors.ts';
import { escapeRegExp, expandTemplate, hasTemplate, parseTemplate, TemplateError } from './traits.ts';

const traits = {
  logins: ['alice', 'admin'],
  team: ['web', 'db'],
  email: ['alice@example.com', 'not-an-email', 'bob@corp.example.org'],
  'key with space': ['spaced'],
  groups: ['k8s-dev', 'k8s-ops', 'other'],
  Mixed: ['MiXeD'],
  empty: [''],
};

describe('expandTemplate', () => {
  it('returns a literal value unchanged', () => {
    assert.deepEqual(expandTemplate('ubuntu', traits), ['ubuntu']);
  });

  it('expands an internal trait to every value', () => {
    assert.deepEqual(expandTemplate('{{internal.logins}}', traits), ['alice', 'admin']);
  });

  it('reads external traits, with spaces inside the braces', () => {
    assert.deepEqual(expandTemplate('{{ external.team }}', traits), ['web', 'db']);
  });

  it('yields nothing for a missing trait', () => {
    assert.deepEqual(expandTemplate('{{internal.db_users}}', traits), []);
    assert.deepEqual(expandTemplate('user-{{external.missing}}', traits), []);
  });

  it('does not read inherited object properties as traits', () => {
    assert.deepEqual(expandTemplate('{{external.constructor}}', {}), []);
    assert.deepEqual(expandTemplate('{{external.toString}}', {}), []);
  });

  it('keeps literal text around the template', () => {
    assert.deepEqual(expandTemplate('user-{{external.team}}-x', traits), ['user-web-x', 'user-db-x']);
  });

  it('reads bracketed trait names', () => {
    assert.deepEqual(expandTemplate('{{external["key with space"]}}', traits), ['spaced']);
  });

  it('email.local keeps the local part and drops non-addresses', () => {
    assert.deepEqual(expandTemplate('{{email.local(external.email)}}', traits), ['alice', 'bob']);
  });

  it('regexp.replace rewrites matching values and drops the rest', () => {
    assert.deepEqual(expandTemplate('{{regexp.replace(external.groups, "^k8s-(.*)$", "$1")}}', traits), ['dev', 'ops']);
  });

  it('strings.lower and strings.upper change case, and functions nest', () => {
    assert.deepEqual(expandTemplate('{{strings.lower(external.Mixed)}}', traits), ['mixed']);
    assert.deepEqual(expandTemplate('{{strings.upper(email.local(external.email))}}', traits), ['ALICE', 'BOB']);
  });

  it('drops empty values and duplicates', () => {
    assert.deepEqual(expandTemplate('{{external.empty}}', traits), []);
    assert.deepEqual(expandTemplate('{{external.dup}}', { dup: ['a', 'a', 'b'] }), ['a', 'b']);
  });

  it('escapes only the trait part when asked', () => {
    const out = expandTemplate('^{{external.v}}-[0-9]+$', { v: ['a.b'] }, { escape: escapeRegExp });
    assert.deepEqual(out, ['^a\\.b-[0-9]+$']);
  });
});

describe('parseTemplate', () => {
  it('splits prefix, expression and suffix', () => {
    const t = parseTemplate('pre-{{external.team}}-post');
    assert.equal(t.prefix, 'pre-');
    assert.equal(t.suffix, '-post');
    assert.deepEqual(t.expression, { type: 'trait', namespace: 'external', name: 'team' });
  });

  it('treats text without braces as a literal', () => {
    assert.deepEqual(parseTemplate('plain'), { prefix: 'plain', suffix: '' });
    assert.equal(hasTemplate('plain'), false);
    assert.equal(hasTemplate('a}}'), true);
  });

  const malformed: Array<[string, RegExp]> = [
    ['{{external.team', /without a closing/],
    ['external.team}}', /without an opening/],
    ['}}{{external.team}}', /without an opening/],
    ['{{}}', /empty template/],
    ['{{ }}', /empty template/],
    ['{{external.a}}-{{external.b}}', /only one/],
    ['{{foo.bar}}', /unknown namespace "foo"/],
    ['{{internal.login}}', /unknown internal trait "login".*logins/],
    ['{{external}}', /expected '\.'/],
    ['{{external.}}', /expected a name/],
    ['{{external.a b}}', /unexpected "b"/],
    ['{{external.a-b}}', /unexpected character "-"/],
    ["{{external['x']}}", /unexpected character "'"/],
    ['{{email.remote(external.a)}}', /unknown function email\.remote/],
    ['{{email.local(external.a, "x")}}', /takes 1 argument/],
    ['{{regexp.replace(external.a, "x")}}', /takes 3 argument/],
    ['{{regexp.replace(external.a, "(", "")}}', /invalid regular expression "\(".*Unterminated group/],
    ['{{email.local(external.a}}', /expected '\)' before the end/],
    ['{{external["unterminated}}', /unexpected character/],
  ];
  for (const [value, message] of malformed) {
    it(`refuses ${value}`, () => {
      assert.throws(
        () => parseTemplate(value),
        (error: unknown) => {
          assert.ok(error instanceof TemplateError);
          assert.ok(error instanceof BadInputError);
          assert.equal(error.code, 'PST_BAD_INPUT');
          assert.match(error.message, message);
          assert.ok(error.message.includes(`"${value}"`), `message quotes the value: ${error.message}`);
          return true;
        },
      );
    });
  }
});

describe('escapeRegExp', () => {
  it('makes every metacharacter match itself', () => {
    const nasty = 'a.b*c+d?e^f$g{h}i(j)k|l[m]n\\o/p-q';
    const regex = new RegExp(`^${escapeRegExp(nasty)}$`);
    assert.equal(regex.test(nasty), true);
    assert.equal(regex.test(nasty.replace('.', 'X')), false);
    assert.equal(new RegExp(`^${escapeRegExp('.*')}$`).test('anything'), false);
  });
});
