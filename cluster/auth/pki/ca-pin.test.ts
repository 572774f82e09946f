import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { BadInputError } from '../../../protocols/errors.ts';
import { caPin, matchesCaPin, parseCaPin, verifyCaPin } from './ca-pin.ts';
import { CaPinMismatchError } from './errors.ts';
import { runTool } from './test-fixtures.ts';
import { createCaCertificate } from './x509.ts';

const ca = createCaCertificate({ clusterName: 'root', kind: 'host' });
const other = createCaCertificate({ clusterName: 'root', kind: 'host' });

describe('caPin', () => {
  it('equals openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum', async () => {
    const pubkey = await runTool('openssl', ['x509', '-pubkey', '-noout'], ca.certPem);
    const der = await runTool('openssl', ['pkey', '-pubin', '-outform', 'DER'], pubkey.stdout);
    const sum = await runTool('sha256sum', [], der.stdout);
    assert.equal(der.code, 0, der.stderr);
    assert.equal(caPin(ca.certPem), `sha256:${sum.stdout.toString().split(' ')[0]}`);
  });

  it('is stable: PEM or DER, computed again, same value', () => {
    const pin = caPin(ca.certPem);
    assert.match(pin, /^sha256:[0-9a-f]{64}$/);
    assert.equal(caPin(new X509Certificate(ca.certPem).raw), pin);
    assert.equal(caPin(ca.certPem), pin);
    assert.notEqual(caPin(other.certPem), pin);
  });

  it('refuses something that is not a certificate', () => {
    assert.throws(() => caPin('garbage'), BadInputError);
  });
});

describe('verifyCaPin', () => {
  const pin = caPin(ca.certPem);

  it('accepts the pin, also in upper case or among several', () => {
    verifyCaPin(ca.certPem, pin);
    verifyCaPin(ca.certPem, pin.toUpperCase().replace('SHA256', 'sha256'));
    verifyCaPin(ca.certPem, [caPin(other.certPem), pin]);
    assert.equal(matchesCaPin(ca.certPem, pin), true);
  });

  it('refuses another CA, naming both pins and what to do', () => {
    assert.equal(matchesCaPin(other.certPem, pin), false);
    assert.throws(
      () => verifyCaPin(other.certPem, pin),
      (e: unknown) => e instanceof CaPinMismatchError && e.code === 'PST_CA_PIN_MISMATCH' && e.message.includes(pin) && e.message.includes(caPin(other.certPem)) && /do not join/.test(e.message),
    );
  });

  it('refuses malformed pins and an empty list', () => {
    for (const bad of ['', 'sha256:', `sha1:${'a'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, `sha256:${'g'.repeat(64)}`, pin.slice(7)]) {
      assert.throws(() => verifyCaPin(ca.certPem, bad), BadInputError, bad);
    }
    assert.throws(() => verifyCaPin(ca.certPem, []), /no CA pin given/);
    assert.equal(parseCaPin(pin).length, 32);
  });
});
