/**
 * `psh proxy ssh [login@]NODE[:PORT]`: OpenSSH's ProxyCommand. Opens TLS to the current
 * profile's proxy with ALPN `postern-ssh` and the profile's user certificate, names the
 * node on one JSON line, and on `ok` carries stdin/stdout raw; on `error <reason>` it
 * prints the reason and exits 1 (see cluster/proxy/ssh-route.ts for the protocol).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { parseProxyAddress } from '../../cluster/api/web-client.ts';
import { PosternError } from '../../protocols/errors.ts';
import { loadProfile, profileDir, profileFiles } from './profile.ts';
import { pumpStdin } from './stdin-pump.ts';

/** The CA file trust.ts remembers per proxy. */
export const clusterCaFile = 'cluster-ca.pem';

export interface SshTarget {
  login?: string;
  node: string;
  port: number;
}

/** Parses `[login@]node[:port]`. */
export function parseSshTarget(text: string): SshTarget {
  const match = /^(?:([^@]+)@)?([^@:]+)(?::(\d{1,5}))?$/.exec(text);
  if (!match?.[2]) throw new UsageError(`cannot read "${text}": expected [login@]NODE[:PORT]`);
  return { ...(match[1] ? { login: match[1] } : {}), node: match[2], port: match[3] ? Number(match[3]) : 22 };
}

export async function proxySsh(invocation: Invocation): Promise<number> {
  const [text] = invocation.positionals;
  if (!text || invocation.positionals.length > 1) throw new UsageError('expected one [login@]NODE[:PORT]');
  const target = parseSshTarget(text);
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const dir = profileDir(profile.proxy);
  const [key, cert, ca] = await Promise.all(
    [profileFiles.tlsKey, profileFiles.tlsCert, clusterCaFile].map((file) =>
      readFile(path.join(dir, file), 'utf8').catch(() => {
        throw new PosternError('PST_NOT_LOGGED_IN', `the profile for ${profile.proxy} has no ${file}; run psh login --proxy ${profile.proxy}`);
      }),
    ),
  );
  const address = parseProxyAddress(profile.proxy);
  const socket = tls.connect({
    host: address.host,
    port: address.port,
    ca,
    key,
    cert,
    ALPNProtocols: ['postern-ssh'],
    servername: /^[\d.]+$|:/.test(address.host) ? undefined : address.host,
  });
  const cluster = stringOption(invocation, 'cluster');
  const request = { node: target.node, port: target.port, ...(target.login ? { login: target.login } : {}), ...(cluster ? { cluster } : {}) };
  const rest = await _answer(socket, JSON.stringify(request) + '\n', profile.proxy);
  if (rest.length > 0) process.stdout.write(rest);
  return new Promise((resolve) => {
    socket.on('error', (error) => {
      process.stderr.write(`psh: connection to ${profile.proxy} failed: ${error.message}\n`);
    });
    let input: Readable | undefined;
    socket.once('close', (hadError) => {
      input?.unpipe(socket);
      input?.destroy();
      resolve(hadError ? 1 : 0);
    });
    socket.pipe(process.stdout);
    input = pumpStdin(socket);
  });
}

/** Sends the request and reads the answer line; resolves with any bytes after `ok\n`. */
function _answer(socket: tls.TLSSocket, request: string, proxy: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const fail = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error instanceof PosternError ? error : new PosternError('PST_PROXY_UNREACHABLE', `cannot reach the proxy ${proxy}: ${error.message}`));
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0) {
        if (buffered.length > 8_192) fail(new PosternError('PST_PROXY_PROTOCOL', `the proxy ${proxy} sent no answer line`));
        return;
      }
      const line = buffered.subarray(0, newline).toString('utf8');
      if (line === 'ok') {
        cleanup();
        socket.pause();
        resolve(buffered.subarray(newline + 1));
        return;
      }
      fail(new PosternError('PST_SSH_REFUSED', line.startsWith('error ') ? line.slice('error '.length) : `unexpected answer from the proxy: ${line.slice(0, 200)}`));
    };
    const onClose = (): void => fail(new PosternError('PST_PROXY_PROTOCOL', `the proxy ${proxy} closed the connection without an answer (does it run the SSH route?)`));
    const onSecure = (): void => {
      if (socket.alpnProtocol !== 'postern-ssh') return fail(new PosternError('PST_PROXY_PROTOCOL', `the proxy ${proxy} does not serve postern-ssh`));
      socket.write(request);
    };
    function cleanup(): void {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', fail);
      socket.off('secureConnect', onSecure);
    }
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', fail);
    socket.once('secureConnect', onSecure);
  });
}
