/** The commented starter `postern.yaml` that `postern configure` writes. */
export interface StarterOptions {
  clusterName: string;
  dataDir: string;
  roles: Array<'auth' | 'proxy' | 'agent'>;
  proxyAddr?: string;
  publicAddr?: string;
  token?: string;
  caPin?: string;
  labels?: Record<string, string>;
  /** For agents: the node name (default: the host name at run time). */
  nodeName?: string;
  /** /healthz, /readyz, /metrics; default 127.0.0.1:3000. */
  diagAddr?: string;
  /** Agents: add the database service section (databases listed by the operator). */
  databases?: boolean;
}

const yamlString = (value: string) => JSON.stringify(value);

/** Renders a starter config; every line it writes validates against configSchema. */
export function renderStarterConfig(options: StarterOptions): string {
  const lines = [
    '# postern.yaml: what this `postern start` process runs.',
    '# Reference: docs/configuration.md. Unknown fields are errors, so typos cannot hide.',
    'version: v1',
    '',
    '# State: the embedded database, identities, recordings. Keep it on persistent disk.',
    `data_dir: ${yamlString(options.dataDir)}`,
    '',
    'log:',
    '  level: info   # trace, debug, info, warn, error',
    '',
    '# /healthz, /readyz and Prometheus /metrics. Set to "" to turn off.',
    `diag_addr: ${options.diagAddr ?? '127.0.0.1:3000'}`,
  ];
  if (options.roles.includes('auth')) {
    lines.push(
      '',
      '# Auth Service: certificate authorities, users, roles, tokens, audit log.',
      'auth:',
      `  cluster_name: ${yamlString(options.clusterName)}`,
      '  listen_addr: 127.0.0.1:3025   # gRPC with mutual TLS; proxies and admin clients connect here',
      '  backend:',
      '    type: sqlite                 # one file in data_dir; use postgres for high availability',
      '  max_session_ttl: 12h',
    );
  }
  if (options.roles.includes('proxy')) {
    lines.push(
      '',
      '# Proxy Service: the one public port for users, agents and leaf clusters.',
      'proxy:',
      '  listen_addr: 0.0.0.0:3080',
      `  public_addr: ${yamlString(options.publicAddr ?? 'localhost:3080')}`,
      '  # tls_cert_file: /etc/postern/proxy.crt   # a certificate for the public name; default: one from the host CA',
      '  # tls_key_file: /etc/postern/proxy.key',
    );
  }
  if (options.roles.includes('agent')) {
    lines.push(
      '',
      '# Agent: joins the cluster through a proxy and serves resources over a reverse tunnel.',
      'agent:',
      ...(options.nodeName ? [`  node_name: ${yamlString(options.nodeName)}`] : []),
      `  proxy_addr: ${yamlString(options.proxyAddr ?? 'localhost:3080')}`,
      `  token: ${yamlString(options.token ?? '')}   # pctl tokens add --type=node; not needed once joined`,
      options.caPin ? `  ca_pin: ${yamlString(options.caPin)}` : '  # ca_pin: sha256:...   # from pctl status; pins the cluster CA on first join',
      '  labels:',
      ...Object.entries(options.labels ?? { env: 'dev' }).map(([k, v]) => `    ${k}: ${yamlString(v)}`),
      '  # The SSH service: logins with Postern certificates, as the host accounts the roles allow.',
      '  ssh:',
      '    enabled: true',
    );
    if (options.databases) {
      lines.push(
        '  # The database service (docs/databases.md): each database is served as db:NAME.',
        '  db:',
        '    databases: []',
        '    # - name: orders',
        '    #   protocol: postgres          # or mysql',
        '    #   uri: 127.0.0.1:5432',
        '    #   labels: { env: prod }',
        '    #   tls: { mode: verify-full, ca_file: /etc/postern/orders-ca.pem }',
        '    #   auth: { type: cert }        # db-client certificate, CN = database user (pctl auth sign --format=db)',
        '    # Or serve `db` resources created with pctl create -f whose labels match:',
        '    resources: []',
        '    # - labels: { env: prod }',
      );
    }
  }
  return lines.join('\n') + '\n';
}
