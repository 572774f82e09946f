import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../common/clock.ts';
import { generateTotpSecret, totpCode, totpPeriod, totpUri, verifyTotp } from './totp.ts';

// A step boundary plus 10 s, so "one step either side" is unambiguous.
const start = new Date(Date.UTC(2026, 0, 1, 12, 0, 10));

function setup() {
  const clock = new FakeClock(start);
  const secret = generateTotpSecret();
  return { clock, secret };
}

describe('generateTotpSecret / totpUri', () => {
  it('makes a 160-bit base32 secret, different every time', () => {
    const a = generateTotpSecret();
    assert.match(a, /^[A-Z2-7]{32}$/);
    assert.notEqual(a, generateTotpSecret());
  });

  it('gives an otpauth URI an authenticator app reads', () => {
    const uri = new URL(totpUri({ secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', account: 'alice@example.com', issuer: 'Postern' }));
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.host, 'totp');
    assert.equal(decodeURIComponent(uri.pathname), '/Postern:alice@example.com');
    assert.equal(uri.searchParams.get('secret'), 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
    assert.equal(uri.searchParams.get('issuer'), 'Postern');
  });
});

describe('verifyTotp', () => {
  it('accepts the current code and returns its time step', () => {
    const { clock, secret } = setup();
    const result = verifyTotp(totpCode(secret, clock.now()), { secret, clock });
    assert.deepEqual(result, { ok: true, timeStep: Math.floor(start.getTime() / 1000 / totpPeriod) });
  });

  it('refuses a wrong code and a malformed one', () => {
    const { clock, secret } = setup();
    const right = totpCode(secret, clock.now());
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    assert.deepEqual(verifyTotp(wrong, { secret, clock }), { ok: false, reason: 'invalid' });
    assert.deepEqual(verifyTotp('12345', { secret, clock }), { ok: false, reason: 'malformed' });
    assert.deepEqual(verifyTotp('12a456', { secret, clock }), { ok: false, reason: 'malformed' });
    assert.deepEqual(verifyTotp(' 123456', { secret, clock }), { ok: false, reason: 'malformed' });
  });

  it('refuses a code for another secret', () => {
    const { clock, secret } = setup();
    assert.equal(verifyTotp(totpCode(generateTotpSecret(), clock.now()), { secret, clock }).ok, false);
  });

  it('accepts codes one step early or late, not two', () => {
    const { clock, secret } = setup();
    const at = (steps: number) => new Date(start.getTime() + steps * totpPeriod * 1000);
    assert.equal(verifyTotp(totpCode(secret, at(-1)), { secret, clock }).ok, true);
    assert.equal(verifyTotp(totpCode(secret, at(1)), { secret, clock }).ok, true);
    assert.deepEqual(verifyTotp(totpCode(secret, at(-2)), { secret, clock }), { ok: false, reason: 'invalid' });
    assert.deepEqual(verifyTotp(totpCode(secret, at(2)), { secret, clock }), { ok: false, reason: 'invalid' });
  });

  it('stops accepting a code once the clock has moved two steps on', () => {
    const { clock, secret } = setup();
    const code = totpCode(secret, clock.now());
    clock.advance(totpPeriod * 1000);
    assert.equal(verifyTotp(code, { secret, clock }).ok, true);
    clock.advance(totpPeriod * 1000);
    assert.equal(verifyTotp(code, { secret, clock }).ok, false);
  });

  it('refuses the same code again (replay), and an older one, but takes the next', () => {
    const { clock, secret } = setup();
    const code = totpCode(secret, clock.now());
    const first = verifyTotp(code, { secret, clock });
    assert.equal(first.ok, true);
    const lastTimeStep = first.ok ? first.timeStep : -1;
    assert.deepEqual(verifyTotp(code, { secret, clock, lastTimeStep }), { ok: false, reason: 'replayed' });
    const older = totpCode(secret, new Date(start.getTime() - totpPeriod * 1000));
    assert.deepEqual(verifyTotp(older, { secret, clock, lastTimeStep }), { ok: false, reason: 'replayed' });
    clock.advance(totpPeriod * 1000);
    const next = verifyTotp(totpCode(secret, clock.now()), { secret, clock, lastTimeStep });
    assert.deepEqual(next, { ok: true, timeStep: lastTimeStep + 1 });
  });
});
