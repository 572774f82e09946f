/**
 * The agent's SSH service: an ssh2 server speaking over any Duplex (a tunnel stream,
 * or a TCP socket in tests), presenting the agent's host certificate.
 *
 * Authentication is public key only, and the key must be an OpenSSH user certificate
 * (`*-cert-v01@openssh.com`) from a trusted user CA, naming the requested login, inside
 * its validity window (with clock skew); ssh2 checks nothing of it, so
 * protocols/ssh does: `parseCertificate`, `verifyCertificate`,
 * `verifyCertificateUserSignature`. Then the injected `authorize` callback decides from
 * the identity in the certificate's `@postern.dev` extensions, the login and this
 * node's labels (no callback: deny). The login must be a host account the agent can
 * start processes as (host-user.ts).
 *
 * Sessions: exec (the account's shell `-c`, exit status or signal returned), a shell in
 * a pty (node-pty; window-change; needs `permit-pty`), and the `sftp` subsystem (the
 * host's sftp-server). A certificate's `force-command` replaces whatever the client
 * asked to run. The environment is built here: HOME, USER, LOGNAME, SHELL, PATH, plus
 * only LANG, LC_* and TERM from the client. No SSH_CLIENT / SSH_CONNECTION is set, so
 * bash does not read ~/.bashrc for exec (it would for sshd; it cost ~880 ms here).
 * Local port forwarding (direct-tcpip, `ssh -L`) and agent forwarding (`ssh -A`) only
 * when the authorization decision and the certificate's permit-* extensions both allow
 * them; X11 and remote forwarding (`-R`) are refused.
 *
 * Every accept, deny, exec/shell/sftp start and session end goes to `audit(event)`.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { KeyObject } from 'node:crypto';
import type { Duplex, Writable } from 'node:stream';
import pty from 'node-pty';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, PseudoTtyInfo, ServerChannel, Session, TcpipRequestInfo } from 'ssh2';
import { isIP } from 'node:net';
import { HEADER_CLIENT_ADDRESS } from '../../../protocols/tunnel/headers.ts';
import { forwardAgent } from './agent-forwarding.ts';
import { agentForwardingRefusal, forwardDirectTcpip, portForwardingRefusal } from './port-forwarding.ts';
import { BadInputError, PosternError } from '../../../protocols/errors.ts';
import { parseCertificate } from '../../../protocols/ssh/certificate.ts';
import { verifyCertificate, verifyCertificateUserSignature } from '../../../protocols/ssh/verify-certificate.ts';
import type { VerifiedSshCertificate } from '../../../protocols/ssh/verify-certificate.ts';
import { SshCertificateBadSignatureError, SshCertificateError, SshCertificateUnknownCaError } from '../../../protocols/ssh/errors.ts';
import type { Logger } from '../../../cluster/common/logger.ts';
import type { ServiceHandler } from '../../tunnel/service-registry.ts';
import { certifiedHostKey } from '../../../protocols/ssh/host-key.ts';
import { HostUserError, cannotRunAs, commandAs, lookupHostUser } from './host-user.ts';
import type { HostUser } from './host-user.ts';
import { sshUserIdentityFromCertificate } from '../../../cluster/api/ssh-identity.ts';
import type { SshUserIdentity } from '../../../cluster/api/ssh-identity.ts';
import type { SessionRecording } from '../recordings/session-recorder.ts';
import { pumpChannelToStdin } from './stdin-pump.ts';

export const SFTP_SERVER_PATH = '/usr/lib/openssh/sftp-server';
const CERT_SUFFIX = '-cert-v01@openssh.com';
const MAX_AUTH_ATTEMPTS = 6;
const LOGIN_GRACE_MS = 30_000;
const SAFE_ENV = /^(LANG|LC_[A-Z_]+|TERM)$/;
const MAX_ENV_VALUE = 1024;
/** The signals a client may send (RFC 4254 section 6.9). */
const CLIENT_SIGNALS = new Set(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']);

/** What the authorization callback is asked. */
export interface SshAuthorizationRequest {
  identity: SshUserIdentity;
  login: string;
  nodeLabels: Record<string, string>;
  certificate: VerifiedSshCertificate;
}

export interface SshAuthorizationDecision {
  allowed: boolean;
  reason: string;
  /** Record shell and exec sessions (asciicast). Default false. */
  recordSession?: boolean;
  /** Allow direct-tcpip (`ssh -L`) channels. Default false. */
  permitPortForwarding?: boolean;
  /** Allow agent forwarding (`ssh -A`). Default false. */
  permitAgentForwarding?: boolean;
}

/** What a recorder is told about a session starting. */
export interface SshRecordingRequest {
  sessionId: string;
  connectionId: string;
  user: string;
  /** The cluster that issued the user's certificate (a trusted root's, for a root user). */
  userCluster?: string;
  login: string;
  kind: 'shell' | 'exec';
  command?: string;
  cols: number;
  rows: number;
  term: string;
  shell: string;
}

/** One audited SSH decision or session event. */
export interface SshAuditEvent {
  event: 'ssh.auth.allow' | 'ssh.auth.deny' | 'ssh.session.start' | 'ssh.session.end' | 'ssh.request.deny' | 'ssh.exec' | 'ssh.sftp' | 'ssh.port_forward' | 'ssh.agent_forward';
  time: Date;
  connectionId: string;
  login: string;
  /** The Postern user, once the certificate decoded. */
  user?: string;
  /** The cluster that issued the user's certificate (a root, for a root user). */
  userCluster?: string;
  roles?: string[];
  keyId?: string;
  remoteAddress?: string;
  reason?: string;
  /** One session channel (shell, exec or sftp); also the recording's id. */
  sessionId?: string;
  /** Set on session.end when the session was recorded. */
  recordingId?: string;
  kind?: 'exec' | 'shell' | 'sftp';
  /** Port forwarding: where the client asked to connect. */
  target?: string;
  command?: string;
  exitCode?: number;
  signal?: string;
  durationMs?: number;
}

export interface SshServiceOptions {
  /** The agent's SSH host private key (OpenSSH private key file text, `ssh_key_pem`). */
  hostKeyPem: string;
  /** The agent's host certificate line (`ssh_cert`). */
  hostCertificate: string;
  /** The user CA public keys whose certificates are accepted (read at each login, so rotation applies). */
  trustedUserCAs: () => readonly (KeyObject | Uint8Array)[];
  /** Decides each login; without it every login is denied. */
  authorize?: (request: SshAuthorizationRequest) => SshAuthorizationDecision | Promise<SshAuthorizationDecision>;
  /** This node's labels, for the authorization callback. */
  nodeLabels?: () => Record<string, string>;
  audit?: (event: SshAuditEvent) => void;
  logger?: Logger;
  now?: () => Date;
  /** Default 60. */
  clockSkewSeconds?: number;
  sftpServerPath?: string;
  /** Starts recording a session the decision says to record; undefined: not recorded. */
  record?: (request: SshRecordingRequest) => SessionRecording | undefined;
}

/** Where a stream came from. */
export interface SshStreamInfo {
  /** The client's IP address, when known (checked against a `source-address` option). */
  remoteAddress?: string;
}

interface Authenticated {
  identity: SshUserIdentity;
  certificate: VerifiedSshCertificate;
  user: HostUser;
  decision: SshAuthorizationDecision;
}

interface ConnectionState {
  id: string;
  client: Connection;
  remoteAddress: string | undefined;
  attempts: number;
  auth?: Authenticated;
  login: string;
}

const defaultAuthorize = (): SshAuthorizationDecision => ({ allowed: false, reason: 'no SSH authorization policy is configured on this agent' });

export class SshService {
  readonly #options: SshServiceOptions;
  #server: InstanceType<typeof ssh2.Server>;
  readonly #connections = new Set<ConnectionState>();
  /** Streams not yet logged in, with what is known of them. ssh2 announces a connection only after the version exchange. */
  readonly #streams = new WeakMap<Duplex, SshStreamInfo & { authenticated: boolean }>();

  constructor(options: SshServiceOptions) {
    this.#options = options;
    this.#server = this.#createServer(options.hostKeyPem, options.hostCertificate);
  }

  /** Presents a renewed host certificate (and key) to new connections. */
  updateHostCertificate(hostKeyPem: string, hostCertificate: string): void {
    this.#server = this.#createServer(hostKeyPem, hostCertificate);
  }

  /** Serves one SSH connection over `stream`. */
  handleStream(stream: Duplex, info: SshStreamInfo = {}): void {
    const entry = { ...info, authenticated: false };
    this.#streams.set(stream, entry);
    // A peer that never finishes logging in is dropped, whether or not it ever spoke SSH.
    const grace = setTimeout(() => {
      if (!entry.authenticated) stream.destroy();
    }, LOGIN_GRACE_MS);
    grace.unref();
    stream.once('close', () => clearTimeout(grace));
    // ssh2 counts on a net.Socket ending its own half when the peer's ends (allowHalfOpen
    // false); a tunnel stream does not, so without this it stays open after the user left.
    stream.once('end', () => stream.end());
    this.#server.injectSocket(stream as never);
  }

  /** The tunnel registry handler (`registry.register('ssh', service.serviceHandler)`). */
  readonly serviceHandler: ServiceHandler = (dial) => {
    const address = dial.headers[HEADER_CLIENT_ADDRESS];
    this.handleStream(dial.stream, address && isIP(address) ? { remoteAddress: address } : {});
  };

  /** Ends every connection. */
  close(): void {
    for (const connection of this.#connections) connection.client.end();
    this.#connections.clear();
  }

  #createServer(hostKeyPem: string, hostCertificate: string): InstanceType<typeof ssh2.Server> {
    const { key } = certifiedHostKey(hostKeyPem, hostCertificate);
    return new ssh2.Server({ hostKeys: [{ key }], ident: 'Postern' }, (client) => this.#onConnection(client));
  }

  get #log(): Logger | undefined {
    return this.#options.logger;
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }

  #audit(state: ConnectionState, event: Omit<SshAuditEvent, 'time' | 'connectionId' | 'login' | 'remoteAddress'> & { login?: string }): void {
    const full: SshAuditEvent = {
      time: this.#now(),
      connectionId: state.id,
      login: state.login,
      remoteAddress: state.remoteAddress,
      ...(state.auth ? { user: state.auth.identity.username, roles: state.auth.identity.roles, keyId: state.auth.certificate.keyId, userCluster: state.auth.identity.cluster } : {}),
      ...event,
    };
    try {
      this.#options.audit?.(full);
    } catch (error) {
      this.#log?.error({ err: error }, 'SSH audit callback failed');
    }
    this.#log?.info({ audit: full }, full.event);
  }

  #onConnection(client: Connection): void {
    // ssh2 1.17 (pinned) keeps the stream it was given as `_sock`.
    const stream = (client as unknown as { _sock?: Duplex })._sock;
    const entry = stream ? this.#streams.get(stream) : undefined;
    const state: ConnectionState = { id: randomUUID(), client, remoteAddress: entry?.remoteAddress, attempts: 0, login: '' };
    this.#connections.add(state);
    client.on('error', (error) => this.#log?.debug({ err: error, connectionId: state.id }, 'SSH connection error'));
    client.on('close', () => {
      this.#connections.delete(state);
    });
    client.on('authentication', (ctx) => {
      void this.#authenticate(state, ctx).catch((error: unknown) => {
        this.#log?.error({ err: error }, 'SSH authentication failed unexpectedly');
        this.#audit(state, { event: 'ssh.auth.deny', reason: 'internal error while checking the certificate; see the agent log' });
        try {
          ctx.reject();
        } catch {
          // connection gone
        }
      });
    });
    client.on('ready', () => {
      if (entry) entry.authenticated = true;
      client.on('session', (accept) => this.#onSession(state, accept()));
      client.on('tcpip', (accept, reject, info) => this.#onDirectTcpip(state, accept, reject, info));
      client.on('request', (_accept, reject, name) => {
        this.#audit(state, { event: 'ssh.request.deny', reason: `${name} is not supported by this agent` });
        reject?.();
      });
    });
  }

  async #authenticate(state: ConnectionState, ctx: AuthContext): Promise<void> {
    state.login = ctx.username;
    if (ctx.method !== 'publickey') {
      ctx.reject(['publickey']);
      return;
    }
    const deny = (reason: string, identity?: SshUserIdentity, keyId?: string): void => {
      this.#audit(state, { event: 'ssh.auth.deny', reason, ...(identity ? { user: identity.username, roles: identity.roles, userCluster: identity.cluster } : {}), ...(keyId !== undefined ? { keyId } : {}) });
      ctx.reject(['publickey']);
      if (++state.attempts >= MAX_AUTH_ATTEMPTS) state.client.end();
    };
    if (!ctx.key.algo.endsWith(CERT_SUFFIX)) {
      deny(`a plain ${ctx.key.algo} key was offered; this agent accepts only Postern user certificates: run psh login`);
      return;
    }
    let certificate: VerifiedSshCertificate;
    let parsed: ReturnType<typeof parseCertificate> | undefined;
    try {
      parsed = parseCertificate(ctx.key.data);
      if (parsed.algorithm !== ctx.key.algo) throw new BadInputError(`the offered key is named ${ctx.key.algo} but holds a ${parsed.algorithm} certificate`);
      certificate = verifyCertificate(parsed, {
        now: this.#now(),
        trustedCAs: this.#options.trustedUserCAs(),
        expectedType: 'user',
        principal: ctx.username,
        clockSkewSeconds: this.#options.clockSkewSeconds,
        sourceAddress: state.remoteAddress,
      });
    } catch (error) {
      if (!(error instanceof PosternError)) throw error;
      deny(error.message, signedByTrustedCa(error) && parsed ? tryIdentity(parsed) : undefined, parsed?.keyId);
      return;
    }
    if (ctx.signature === undefined || ctx.blob === undefined) {
      // The client asks whether it may sign with this certificate (SSH_MSG_USERAUTH_PK_OK).
      ctx.accept();
      return;
    }
    let identity: SshUserIdentity;
    try {
      verifyCertificateUserSignature(certificate, { signature: ctx.signature, signedData: ctx.blob, keyAlgorithm: ctx.key.algo });
      identity = sshUserIdentityFromCertificate(certificate);
    } catch (error) {
      if (!(error instanceof PosternError)) throw error;
      deny(error.message, undefined, certificate.keyId);
      return;
    }
    let decision: SshAuthorizationDecision;
    try {
      decision = await (this.#options.authorize ?? defaultAuthorize)({ identity, login: ctx.username, nodeLabels: { ...this.#options.nodeLabels?.() }, certificate });
    } catch (error) {
      this.#log?.error({ err: error }, 'SSH authorization callback failed');
      decision = { allowed: false, reason: 'the authorization check failed; see the agent log' };
    }
    if (!decision.allowed) {
      deny(`${identity.username} may not log in as ${ctx.username} on this node: ${decision.reason}`, identity, certificate.keyId);
      return;
    }
    let user: HostUser;
    try {
      user = await lookupHostUser(ctx.username);
      const refusal = cannotRunAs(user);
      if (refusal !== undefined) throw new HostUserError(refusal);
    } catch (error) {
      if (!(error instanceof HostUserError)) throw error;
      deny(error.message, identity, certificate.keyId);
      return;
    }
    state.auth = { identity, certificate, user, decision };
    this.#audit(state, { event: 'ssh.auth.allow', reason: decision.reason });
    ctx.accept();
  }

  #onSession(state: ConnectionState, session: Session): void {
    const auth = state.auth;
    if (!auth) {
      session.removeAllListeners();
      return;
    }
    const sessionId = randomUUID();
    const env: Record<string, string> = {};
    let ptyInfo: PseudoTtyInfo | undefined;
    let resize: ((cols: number, rows: number) => void) | undefined;
    let kill: ((signal: NodeJS.Signals) => void) | undefined;
    let pendingSize: { cols: number; rows: number } | undefined;
    let started = false;
    let agentForwarding = false;
    /** Adds SSH_AUTH_SOCK to `env` when the client asked for agent forwarding; resolves before the process starts. */
    const withAgent = async (channel: ServerChannel): Promise<void> => {
      if (!agentForwarding) return;
      try {
        const forward = await forwardAgent(state.client, auth.user, this.#log);
        env.SSH_AUTH_SOCK = forward.socketPath;
        channel.once('close', () => forward.close());
        this.#audit(state, { event: 'ssh.agent_forward', sessionId });
      } catch (error) {
        this.#log?.error({ err: error, sessionId }, 'cannot set up agent forwarding; the session runs without it');
        channel.stderr.write(`postern: agent forwarding could not be set up: ${(error as Error).message}\r\n`);
      }
    };

    session.on('env', (accept, reject, info) => {
      if (SAFE_ENV.test(info.key) && info.val.length <= MAX_ENV_VALUE && !info.val.includes('\0')) {
        env[info.key] = info.val;
        accept?.();
      } else {
        reject?.();
      }
    });
    session.on('pty', (accept, reject, info) => {
      if (!auth.identity.permit.pty) {
        this.#audit(state, { event: 'ssh.request.deny', reason: 'the certificate does not permit a terminal (no permit-pty)' });
        reject?.();
        return;
      }
      ptyInfo = info;
      accept?.();
    });
    session.on('signal', (accept, _reject, info) => {
      // RFC 4254 section 6.9: the client may signal the remote process.
      if (CLIENT_SIGNALS.has(info.name)) kill?.(`SIG${info.name}` as NodeJS.Signals);
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (resize) resize(info.cols, info.rows);
      else pendingSize = { cols: info.cols, rows: info.rows };
      accept?.();
    });
    session.on('x11', (_accept, reject) => {
      this.#audit(state, { event: 'ssh.request.deny', sessionId, reason: 'x11 forwarding is not supported by this agent' });
      reject?.();
    });
    session.on('auth-agent', (accept, reject) => {
      const refusal = agentForwardingRefusal(auth);
      if (refusal !== undefined) {
        this.#audit(state, { event: 'ssh.request.deny', sessionId, reason: refusal });
        reject?.();
        return;
      }
      agentForwarding = true;
      accept?.();
    });
    const once = (reject: (() => void) | undefined): boolean => {
      if (started) {
        reject?.();
        return false;
      }
      started = true;
      return true;
    };

    session.on('exec', (accept, reject, info) => {
      if (!once(reject)) return;
      const channel = accept();
      void withAgent(channel).then(() => {
        if (ptyInfo !== undefined && auth.certificate.forceCommand === undefined) {
          // `ssh -t host command`: the command runs in the terminal it asked for.
          ({ resize, kill } = this.#runPty(state, auth, sessionId, channel, env, ptyInfo, pendingSize, info.command));
          return;
        }
        kill = this.#runCommand(state, auth, sessionId, channel, { env, requested: info.command, kind: 'exec', pty: ptyInfo });
      });
    });
    session.on('subsystem', (accept, reject, info) => {
      if (!once(reject)) return;
      if (info.name !== 'sftp') {
        this.#audit(state, { event: 'ssh.request.deny', reason: `subsystem ${info.name} is not supported by this agent` });
        reject?.();
        started = false;
        return;
      }
      kill = this.#runCommand(state, auth, sessionId, accept(), { env, requested: undefined, kind: 'sftp' });
    });
    session.on('shell', (accept, reject) => {
      if (!once(reject)) return;
      const channel = accept();
      void withAgent(channel).then(() => {
        if (ptyInfo === undefined || auth.certificate.forceCommand !== undefined) {
          kill = this.#runCommand(state, auth, sessionId, channel, { env, requested: undefined, kind: 'shell', pty: ptyInfo });
          return;
        }
        ({ resize, kill } = this.#runPty(state, auth, sessionId, channel, env, ptyInfo, pendingSize, undefined));
      });
    });
  }

  /** `ssh -L`: a direct-tcpip channel to host:port as seen from this node, when both the roles and the certificate permit it. */
  #onDirectTcpip(state: ConnectionState, accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): void {
    forwardDirectTcpip({
      refusal: portForwardingRefusal(state.auth),
      accept,
      reject,
      info,
      audit: (event) => this.#audit(state, event),
      logger: this.#log,
      connectionId: state.id,
    });
  }

  /** A recording when the decision asks for one and a recorder is configured; a recorder that fails leaves the session unrecorded and says so. */
  #startRecording(state: ConnectionState, auth: Authenticated, session: { sessionId: string; kind: 'shell' | 'exec'; command?: string; cols?: number; rows?: number; term?: string }): SessionRecording | undefined {
    if (!auth.decision.recordSession || !this.#options.record) return undefined;
    try {
      return this.#options.record({
        sessionId: session.sessionId,
        connectionId: state.id,
        user: auth.identity.username,
        userCluster: auth.identity.cluster,
        login: state.login,
        kind: session.kind,
        ...(session.command !== undefined ? { command: session.command } : {}),
        cols: clampSize(session.cols ?? 80, 80),
        rows: clampSize(session.rows ?? 24, 24),
        term: session.term || 'xterm',
        shell: auth.user.shell,
      });
    } catch (error) {
      this.#log?.error({ err: error, sessionId: session.sessionId }, 'cannot start the session recording; the session runs unrecorded');
      return undefined;
    }
  }

  #baseEnv(user: HostUser, clientEnv: Record<string, string>, term: string | undefined): Record<string, string> {
    return {
      ...clientEnv,
      HOME: user.home,
      USER: user.name,
      LOGNAME: user.name,
      SHELL: user.shell,
      PATH: user.uid === 0 ? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' : '/usr/local/bin:/usr/bin:/bin',
      ...(term !== undefined ? { TERM: term } : {}),
    };
  }

  /** exec, sftp, and a shell without a pty (or under force-command): a child process on pipes. Returns its kill. */
  #runCommand(state: ConnectionState, auth: Authenticated, sessionId: string, channel: ServerChannel, request: { env: Record<string, string>; requested: string | undefined; kind: 'exec' | 'shell' | 'sftp'; pty?: PseudoTtyInfo }): (signal: NodeJS.Signals) => void {
    const { user, certificate } = auth;
    const env = this.#baseEnv(user, request.env, request.pty?.term);
    let argv: { file: string; args: string[] };
    let command: string | undefined;
    if (certificate.forceCommand !== undefined) {
      command = certificate.forceCommand;
      if (request.requested !== undefined) env.SSH_ORIGINAL_COMMAND = request.requested;
      argv = commandAs(user, user.shell, ['-c', command]);
    } else if (request.kind === 'exec') {
      command = request.requested ?? '';
      argv = commandAs(user, user.shell, ['-c', command]);
    } else if (request.kind === 'sftp') {
      argv = commandAs(user, this.#options.sftpServerPath ?? SFTP_SERVER_PATH, []);
    } else {
      argv = commandAs(user, user.shell, ['-l']);
    }
    const startedAt = Date.now();
    this.#audit(state, { event: 'ssh.session.start', sessionId, kind: request.kind, ...(command !== undefined ? { command } : {}) });
    if (request.kind === 'sftp') this.#audit(state, { event: 'ssh.sftp', sessionId, kind: 'sftp' });
    const recording = request.kind === 'sftp' ? undefined : this.#startRecording(state, auth, { sessionId, kind: request.kind, command, cols: request.pty?.cols, rows: request.pty?.rows, term: request.pty?.term });
    const child = spawn(argv.file, argv.args, { cwd: workingDirectory(user), env, stdio: ['pipe', 'pipe', 'pipe'] });
    channel.on('error', (error: Error) => this.#log?.debug({ err: error, connectionId: state.id }, 'SSH channel error'));
    let ended = false;
    const finish = async (exitCode: number | null, signal: NodeJS.Signals | null, reason?: string): Promise<void> => {
      if (ended) return;
      ended = true;
      await Promise.all([flush(channel, channel), flush(channel.stderr, channel)]);
      sendExit(channel, exitCode, signal === null ? undefined : signal);
      channel.end();
      await recording?.close();
      if (request.kind === 'exec') this.#audit(state, { event: 'ssh.exec', sessionId, kind: 'exec', command, ...(exitCode !== null ? { exitCode } : {}), ...(signal ? { signal } : {}) });
      this.#audit(state, {
        event: 'ssh.session.end',
        sessionId,
        ...(recording ? { recordingId: recording.sessionId } : {}),
        kind: request.kind,
        ...(exitCode !== null ? { exitCode } : {}),
        ...(signal ? { signal } : {}),
        ...(reason !== undefined ? { reason } : {}),
        durationMs: Date.now() - startedAt,
      });
    };
    child.on('error', (error) => {
      channel.stderr.write(`postern: cannot start ${argv.file}: ${error.message}\r\n`);
      void finish(255, null, error.message);
    });
    if (recording) {
      child.stdout.on('data', (data: Buffer) => recording.output(data));
      child.stderr.on('data', (data: Buffer) => recording.output(data));
    }
    child.stdout.pipe(channel, { end: false });
    child.stderr.pipe(channel.stderr, { end: false });
    pumpChannelToStdin(channel, child.stdin);
    child.stdin.on('error', () => {});
    child.on('close', (code, signal) => void finish(code, signal));
    channel.on('close', () => {
      if (!ended && child.exitCode === null && child.signalCode === null) child.kill('SIGHUP');
    });
    return (signal) => {
      if (!ended) child.kill(signal);
    };
  }

  /** A login shell, or `command`, in a pty; returns its resize (for window-change) and kill. */
  #runPty(
    state: ConnectionState,
    auth: Authenticated,
    sessionId: string,
    channel: ServerChannel,
    clientEnv: Record<string, string>,
    info: PseudoTtyInfo,
    size: { cols: number; rows: number } | undefined,
    command: string | undefined,
  ): { resize: (cols: number, rows: number) => void; kill: (signal: NodeJS.Signals) => void } {
    const { user } = auth;
    const term = info.term || 'xterm';
    const env = this.#baseEnv(user, clientEnv, term);
    const kind = command === undefined ? 'shell' : 'exec';
    const argv = commandAs(user, user.shell, command === undefined ? ['-l'] : ['-c', command]);
    const startedAt = Date.now();
    this.#audit(state, { event: 'ssh.session.start', sessionId, kind, ...(command !== undefined ? { command } : {}) });
    const cols = clampSize(size?.cols ?? info.cols, 80);
    const rows = clampSize(size?.rows ?? info.rows, 24);
    const recording = this.#startRecording(state, auth, { sessionId, kind, command, cols, rows, term });
    const terminal = pty.spawn(argv.file, argv.args, {
      name: term,
      cols,
      rows,
      cwd: workingDirectory(user),
      env,
      encoding: null,
    });
    terminal.onData((data: string | Buffer) => {
      recording?.output(data);
      if (!channel.write(data)) {
        terminal.pause();
        channel.once('drain', () => terminal.resume());
      }
    });
    channel.on('data', (data: Buffer) => terminal.write(data as unknown as string));
    channel.on('error', (error: Error) => this.#log?.debug({ err: error, connectionId: state.id }, 'SSH channel error'));
    let ended = false;
    terminal.onExit(({ exitCode, signal }) => {
      if (ended) return;
      ended = true;
      void flush(channel, channel).then(async () => {
        sendExit(channel, exitCode, signal ? signalName(signal) : undefined);
        channel.end();
        await recording?.close();
        const signalText = signal ? { signal: signalName(signal) ?? String(signal) } : {};
        if (kind === 'exec') this.#audit(state, { event: 'ssh.exec', sessionId, kind, command, exitCode, ...signalText });
        this.#audit(state, { event: 'ssh.session.end', sessionId, ...(recording ? { recordingId: recording.sessionId } : {}), kind, exitCode, ...signalText, durationMs: Date.now() - startedAt });
      });
    });
    channel.on('close', () => {
      if (!ended) terminal.kill('SIGHUP');
    });
    return {
      resize: (cols, rows) => {
        if (ended) return;
        terminal.resize(clampSize(cols, 80), clampSize(rows, 24));
        recording?.resize(clampSize(cols, 80), clampSize(rows, 24));
      },
      kill: (signal) => {
        if (!ended) terminal.kill(signal);
      },
    };
  }
}

/** The account's home, or / when it does not exist (as sshd does). */
function workingDirectory(user: HostUser): string {
  return existsSync(user.home) ? user.home : '/';
}

function clampSize(value: number, fallback: number): number {
  return Number.isInteger(value) && value > 0 && value <= 10_000 ? value : fallback;
}

/** `SIGTERM` for 15, from this platform's numbering. */
function signalName(signal: number): NodeJS.Signals | undefined {
  return (Object.entries(osConstants.signals) as Array<[NodeJS.Signals, number]>).find(([, n]) => n === signal)?.[0];
}

/**
 * Sends exit-signal for a signal SSH can name (RFC 4254 section 6.10: without "SIG"),
 * otherwise exit-status (128 + signal number, as shells report it).
 */
function sendExit(channel: ServerChannel, exitCode: number | null, signal: NodeJS.Signals | undefined): void {
  try {
    if (signal !== undefined && CLIENT_SIGNALS.has(signal.replace(/^SIG/, ''))) channel.exit(signal.replace(/^SIG/, ''), false, '');
    else if (signal !== undefined) channel.exit(128 + (osConstants.signals[signal] ?? 0));
    else channel.exit(exitCode ?? 255);
  } catch {
    channel.exit(255);
  }
}



/** Resolves once everything written to `stream` so far has gone out (or the channel closed). */
function flush(stream: Writable, channel: ServerChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      channel.off('close', done);
      resolve();
    };
    channel.once('close', done);
    if (!stream.writable) {
      done();
      return;
    }
    stream.write(Buffer.alloc(0), () => done());
  });
}

/** True when verification failed after the CA signature checked out, so the certificate's contents are the CA's word. */
function signedByTrustedCa(error: PosternError): boolean {
  return error instanceof SshCertificateError && !(error instanceof SshCertificateUnknownCaError) && !(error instanceof SshCertificateBadSignatureError);
}

/** The identity of a CA-signed certificate for the audit trail of a refusal; undefined when it does not decode. */
function tryIdentity(certificate: Parameters<typeof sshUserIdentityFromCertificate>[0]): SshUserIdentity | undefined {
  try {
    return sshUserIdentityFromCertificate(certificate);
  } catch {
    return undefined;
  }
}
