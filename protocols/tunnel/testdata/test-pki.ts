/**
 * Throwaway PKI for tests and benchmarks: an ECDSA P-256 CA and leaf certificates
 * made with the `openssl` CLI in a temporary directory. Test-only; never used by a
 * daemon.
 *
 * @example
 * const pki = await createTestPki();
 * tls.createServer({ ...pki.server, ca: pki.ca.cert, requestCert: true });
 * await pki.cleanup();
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A PEM certificate and its PEM private key. */
export interface TestKeyPair {
  cert: string;
  key: string;
}

/** Options for one leaf certificate. */
export interface LeafOptions {
  commonName: string;
  /** DNS names and IP addresses for the subjectAltName. */
  dns?: string[];
  ips?: string[];
  usage: 'server' | 'client';
}

/** The CA, a server certificate for localhost/127.0.0.1 and a client certificate. */
export interface TestPki {
  dir: string;
  ca: TestKeyPair;
  server: TestKeyPair;
  client: TestKeyPair;
  /** Issues another leaf from the same CA (e.g. an SNI name). */
  issue(options: LeafOptions): Promise<TestKeyPair>;
  /** Removes the temporary directory. */
  cleanup(): Promise<void>;
}

async function _openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

async function _createCa(dir: string, name: string): Promise<TestKeyPair> {
  await _openssl(dir, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return {
    cert: await readFile(join(dir, `${name}.crt`), 'utf8'),
    key: await readFile(join(dir, `${name}.key`), 'utf8'),
  };
}

let _serial = 0;

async function _issue(dir: string, caName: string, options: LeafOptions, base = `leaf-${++_serial}`): Promise<TestKeyPair> {
  const san = [
    ...(options.dns ?? []).map((d) => `DNS:${d}`),
    ...(options.ips ?? []).map((ip) => `IP:${ip}`),
  ];
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    `extendedKeyUsage=${options.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
    ...(san.length > 0 ? [`subjectAltName=${san.join(',')}`] : []),
  ];
  await writeFile(join(dir, `${base}.ext`), ext.join('\n') + '\n');
  await _openssl(dir, [
    'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${options.commonName}`,
  ]);
  await _openssl(dir, [
    'x509', '-req', '-in', `${base}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`,
    '-set_serial', String(Date.now() * 1000 + ++_serial), '-days', '2',
    '-extfile', `${base}.ext`, '-out', `${base}.crt`,
  ]);
  return {
    cert: await readFile(join(dir, `${base}.crt`), 'utf8'),
    key: await readFile(join(dir, `${base}.key`), 'utf8'),
  };
}

/**
 * Creates a fresh CA with a localhost server certificate and an `agent` client
 * certificate, as PEM strings and as files `ca.crt`, `server.crt`/`.key`, `client.crt`/`.key` in `dir`.
 */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-test-pki-'));
  const ca = await _createCa(dir, 'ca');
  const issue = (options: LeafOptions): Promise<TestKeyPair> => _issue(dir, 'ca', options);
  const [server, client] = await Promise.all([
    _issue(dir, 'ca', { commonName: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' }, 'server'),
    _issue(dir, 'ca', { commonName: 'agent', usage: 'client' }, 'client'),
  ]);
  return { dir, ca, server, client, issue, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
