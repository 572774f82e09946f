/**
 * `postern.yaml`: what one `postern start` process runs. Every section is optional
 * except what the enabled roles need; unknown fields are errors, so a typo never
 * silently turns a setting off. Errors name the file, the field path and what was
 * expected.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { BadInputError } from '../../protocols/errors.ts';
import { parseWith } from './validation.ts';
import { parseDuration } from './duration.ts';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:3025');
const labelMap = z.record(z.string().min(1), z.string());
const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

const backendConfig = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('sqlite'), path: z.string().optional() }),
  z.strictObject({ type: z.literal('postgres'), conn_string: z.string() }),
]);

const authConfig = z.strictObject({
  enabled: z.boolean().default(true),
  cluster_name: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/, 'expected a DNS-like name: lowercase letters, digits, dots and dashes'),
  listen_addr: hostPort.default('127.0.0.1:3025'),
  backend: backendConfig.default({ type: 'sqlite' }),
  /** Longest certificate a login may ask for; roles can only shorten it. */
  max_session_ttl: z
    .string()
    .refine((text) => { try { parseDuration(text); return true; } catch { return false; } }, 'expected a duration like 30m, 12h or 7d')
    .default('12h'),
});

const proxyConfig = z.strictObject({
  enabled: z.boolean().default(true),
  listen_addr: hostPort.default('0.0.0.0:3080'),
  public_addr: hostPort.optional(),
  /** The auth API when auth runs elsewhere (directly, or another proxy's public port). */
  auth_addr: hostPort.optional(),
  /** First start with auth elsewhere: a join token allowing role proxy, and the cluster's CA pin. */
  token: z.string().optional(),
  ca_pin: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits> (see pctl status)').optional(),
  tls_cert_file: z.string().optional(),
  tls_key_file: z.string().optional(),
  /** Web UI sessions end after this long without a request (docs/web-ui.md). */
  web_idle_timeout: z
    .string()
    .refine((text) => { try { const ms = parseDuration(text); return ms >= 10_000 && ms <= 86_400_000; } catch { return false; } }, 'expected a duration from 10s to 24h, like 30m')
    .default('30m'),
  /** HTTP apps are served at APP.<app_domain>; default the public_addr host. The proxy's certificate covers *.<app_domain>. */
  app_domain: z.string().regex(/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/, 'expected a DNS name like apps.example.com').optional(),
  /** An optional dedicated MySQL listener for clients with TLS and a database certificate (docs/databases.md). */
  mysql_listen_addr: hostPort.optional(),
});

/** One account a desktop may be entered as; the password comes from a file or the environment, never from this file. */
const desktopLoginConfig = z
  .strictObject({
    /** The name roles allow (desktop_logins) and users ask for. */
    login: z.string().min(1).max(256),
    /** The account on the host, when it differs from `login`. */
    username: z.string().min(1).max(256).optional(),
    domain: z.string().max(256).optional(),
    password_file: z.string().min(1).optional(),
    password_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').optional(),
  })
  .refine((login) => (login.password_file === undefined) !== (login.password_env === undefined), 'set exactly one of password_file or password_env');

/** An RDP desktop served through the tunnels as `desktop:NAME`. */
const desktopConfig = z.strictObject({
  name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'expected 1-63 letters, digits, dots, dashes or underscores'),
  addr: hostPort,
  labels: labelMap.default({}),
  /** Accept only this RDP server certificate (sha256 of its DER, hex); without it any certificate is accepted and its hash logged. */
  server_cert_sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits').optional(),
  logins: z.array(desktopLoginConfig).min(1),
  /** Where session recordings go; default <data_dir>/recordings/desktop. */
  recordings_dir: z.string().optional(),
});

/** One HTTP or TCP application an agent serves (agent/services/app). */
export const appConfigSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a DNS label: lowercase letters, digits and dashes (it becomes NAME.<proxy name>)'),
  uri: z.string().regex(/^(https?|tcp):\/\/[^\s/]+(\/\S*)?$/, 'expected http://host:port, https://host:port or tcp://host:port'),
  /** Shown by psh apps ls instead of the default address; routing is always by NAME.<proxy app_domain>. */
  public_addr: z.string().optional(),
  labels: labelMap.default({}),
  /** Headers set on every request to the upstream (after the client's are stripped of the same names). */
  rewrite: z.strictObject({ headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/), z.string()).default({}) }).default({ headers: {} }),
  /** Do not check the upstream's TLS certificate (https apps with self-signed certificates). */
  insecure_skip_verify: z.boolean().default(false),
});

/** One Kubernetes API server an agent serves (agent/services/kube): by kubeconfig, or by address and credentials. */
export const kubeClusterConfigSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/, 'expected a DNS-like name: lowercase letters, digits, dots and dashes'),
    labels: labelMap.default({}),
    /** A kubeconfig file; `context` picks one (default its current-context). */
    kubeconfig: z.string().optional(),
    context: z.string().optional(),
    /** Or the API server directly: https://host:port, its CA, and a bearer token or client certificate. */
    api_addr: z.string().regex(/^https:\/\/\S+$/, 'expected https://host:port').optional(),
    ca_file: z.string().optional(),
    token_file: z.string().optional(),
    client_cert_file: z.string().optional(),
    client_key_file: z.string().optional(),
  })
  .refine((c) => (c.kubeconfig === undefined) !== (c.api_addr === undefined), 'set exactly one of kubeconfig and api_addr');

/** How an agent reaches one database: shared by agent.db.databases[] and the `db` resource kind. */
export const databaseSpecShape = {
  description: z.string().max(1024).optional(),
  protocol: z.enum(['postgres', 'mysql']),
  /** Where the database listens, host:port. */
  uri: hostPort,
  labels: labelMap.default({}),
  /** TLS towards the database: verify-full checks the chain and the name, verify-ca the chain only. */
  tls: z
    .strictObject({
      mode: z.enum(['verify-full', 'verify-ca', 'insecure']).default('verify-full'),
      ca_file: z.string().optional(),
      server_name: z.string().optional(),
    })
    .default({ mode: 'verify-full' }),
  /** How the agent logs in upstream: a db-client certificate (CN = database user) or a password. */
  auth: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('cert') }),
      z.strictObject({
        type: z.literal('password'),
        /** The upstream user; default the database user the client asked for. */
        user: z.string().optional(),
        password_file: z.string().optional(),
        password_env: z.string().optional(),
      }).refine((a) => (a.password_file === undefined) !== (a.password_env === undefined), 'set exactly one of password_file and password_env'),
    ])
    .default({ type: 'cert' }),
};

/** One database an agent serves as `db:NAME` (docs/databases.md). */
export const databaseConfig = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'expected a name of lowercase letters, digits, dots, dashes and underscores'),
  ...databaseSpecShape,
});
export type DatabaseConfig = z.output<typeof databaseConfig>;

const agentConfig = z.strictObject({
  enabled: z.boolean().default(true),
  node_name: z.string().optional(),
  proxy_addr: hostPort.optional(),
  token: z.string().optional(),
  ca_pin: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits> (see pctl status)').optional(),
  labels: labelMap.default({}),
  command_labels: z
    .record(z.string().min(1), z.strictObject({ command: z.array(z.string()).min(1), period: z.string().default('1m') }))
    .default({}),
  /** The SSH service served through the tunnels; `labels` are added to the node's labels. */
  ssh: z
    .strictObject({ enabled: z.boolean().default(true), labels: labelMap.default({}) })
    .default({ enabled: true, labels: {} }),
  /** RDP desktops this agent serves (docs/desktops.md). */
  desktops: z.array(desktopConfig).default([]).refine((list) => new Set(list.map((d) => d.name)).size === list.length, 'desktop names must be unique'),
  /** HTTP and TCP applications served through the tunnels. */
  apps: z.array(appConfigSchema).default([]),
  /** Kubernetes API servers served through the tunnels. */
  kube: z.strictObject({ clusters: z.array(kubeClusterConfigSchema).default([]) }).default({ clusters: [] }),
  /** Databases served through the tunnels (agent/services/db). */
  db: z
    .strictObject({
      databases: z.array(databaseConfig).default([]),
      /** `db` resources (pctl create -f) this agent serves: those whose labels match one of these selectors. */
      resources: z.array(z.strictObject({ labels: z.record(z.string().min(1), z.union([z.string(), z.array(z.string()).min(1)])) })).default([]),
      /** How often the `db` resources are read. */
      poll_interval: z
        .string()
        .refine((text) => { try { parseDuration(text); return true; } catch { return false; } }, 'expected a duration like 30s or 5m')
        .default('30s'),
    })
    .default({ databases: [], resources: [], poll_interval: '30s' })
    .superRefine((db, ctx) => {
      const seen = new Set<string>();
      for (const [index, entry] of db.databases.entries()) {
        if (seen.has(entry.name)) ctx.addIssue({ code: 'custom', path: ['databases', index, 'name'], message: `database "${entry.name}" is listed twice` });
        seen.add(entry.name);
      }
    }),
});

export const configSchema = z.strictObject({
  version: z.literal('v1').default('v1'),
  data_dir: z.string().default('/var/lib/postern'),
  log: z.strictObject({ level: logLevel.default('info') }).default({ level: 'info' }),
  /** Where /healthz, /readyz and /metrics listen; empty turns them off. */
  diag_addr: hostPort.or(z.literal('')).default('127.0.0.1:3000'),
  auth: authConfig.optional(),
  proxy: proxyConfig.optional(),
  agent: agentConfig.optional(),
});

export type PosternConfig = z.output<typeof configSchema>;

/** Parses config text; `source` names the file in errors. Relative paths resolve against the file's folder. */
export function parseConfig(text: string, source: string): PosternConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true }) ?? {};
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const where = error.linePos?.[0] ? `line ${error.linePos[0].line}, column ${error.linePos[0].col}` : 'unknown position';
      throw new BadInputError(`${source}: ${where}: ${error.message.split('\n')[0]}`);
    }
    throw error;
  }
  const config = parseWith(configSchema, raw, source);
  const base = path.dirname(path.resolve(source));
  config.data_dir = path.resolve(base, config.data_dir);
  for (const desktop of config.agent?.desktops ?? []) {
    for (const login of desktop.logins) if (login.password_file) login.password_file = path.resolve(base, login.password_file);
  }
  for (const db of config.agent?.db.databases ?? []) {
    if (db.tls.ca_file) db.tls.ca_file = path.resolve(base, db.tls.ca_file);
    if (db.auth.type === 'password' && db.auth.password_file) db.auth.password_file = path.resolve(base, db.auth.password_file);
  }
  if (!config.auth && !config.proxy && !config.agent) {
    throw new BadInputError(`${source}: (top level): nothing to run; enable at least one of auth, proxy or agent`);
  }
  return config;
}

/** Reads and parses a config file, with an error that names the file when it cannot be read. */
export async function loadConfig(file: string): Promise<PosternConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(error);
    throw new BadInputError(`cannot read config ${file}: ${reason}; write a starter one with: postern configure -o ${file}`);
  }
  return parseConfig(text, file);
}
