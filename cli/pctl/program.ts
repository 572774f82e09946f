/** `pctl`: the administrator's client for a cluster's Auth Service. */
import { option, type Command } from '../command.ts';
import { connectionOptions } from './connect.ts';

const format = option('string', 'text (default), json or yaml');

export const program: Command = {
  name: 'pctl',
  summary: "administer a Postern cluster: users, roles, tokens, audit, CAs",
  usage: 'pctl COMMAND [options]   (on the auth host it uses the local admin identity; elsewhere pass -i IDENTITY)',
  examples: [
    'pctl status',
    'pctl users add alice --roles access,editor --logins alice,ubuntu',
    'pctl tokens add --type=node --ttl 1h',
    'pctl get roles --format yaml > roles.yaml',
    'pctl create -f role.yaml --force',
    'pctl audit search --from 2h --type user.login',
  ],
  commands: [
    {
      name: 'status',
      summary: 'cluster name, version, backend, CA pins',
      usage: 'pctl status [--format json]',
      options: { ...connectionOptions, format },
      run: async (i) => (await import('./status.ts')).status(i),
    },
    {
      name: 'users',
      summary: 'add, list, remove and reset local users',
      usage: 'pctl users add|ls|rm|reset ...',
      commands: [
        {
          name: 'add',
          summary: 'create a user and print a one-time sign-up token',
          usage: 'pctl users add NAME --roles ROLE[,ROLE] [--logins L1,L2] [--traits JSON]',
          options: {
            ...connectionOptions,
            roles: option('string', 'comma-separated roles, e.g. access,editor'),
            logins: option('string', 'comma-separated OS logins (the logins trait)'),
            traits: option('string', 'traits as JSON, e.g. {"db_users":["alice"]}'),
            proxy: option('string', 'proxy address to print in the sign-up command'),
          },
          examples: ['pctl users add alice --roles access --logins alice,ubuntu'],
          run: async (i) => (await import('./users.ts')).usersAdd(i),
        },
        { name: 'ls', aliases: ['list'], summary: 'list users', usage: 'pctl users ls [--format json]', options: { ...connectionOptions, format }, run: async (i) => (await import('./users.ts')).usersList(i) },
        { name: 'rm', aliases: ['remove', 'delete'], summary: 'delete a user', usage: 'pctl users rm NAME', options: connectionOptions, run: async (i) => (await import('./users.ts')).usersRemove(i) },
        { name: 'reset', summary: 'issue a one-time token that resets password and second factor (also unlocks)', usage: 'pctl users reset NAME', options: connectionOptions, run: async (i) => (await import('./users.ts')).usersReset(i) },
      ],
    },
    {
      name: 'tokens',
      summary: 'join tokens for agents, proxies, bots and trusted clusters',
      usage: 'pctl tokens add|ls|rm ...',
      commands: [
        {
          name: 'add',
          summary: 'create a join token (printed once)',
          usage: 'pctl tokens add --type=ROLE[,ROLE] [--ttl 30m] [--labels k=v] [--single-use]',
          options: {
            ...connectionOptions,
            type: option('string', 'node, db, app, kube, desktop, proxy, trusted_cluster, bot'),
            ttl: option('string', 'lifetime, e.g. 30m (default), 1h, 7d'),
            labels: option('string', 'k=v labels given to what joins with it (repeatable)', { multiple: true }),
            'single-use': option('boolean', 'the token works once'),
            format,
          },
          examples: ['pctl tokens add --type=node --ttl 1h --labels env=prod', 'pctl tokens add --type=trusted_cluster --labels env=prod'],
          run: async (i) => (await import('./tokens.ts')).tokensAdd(i),
        },
        { name: 'ls', aliases: ['list'], summary: 'list tokens (never their secrets)', usage: 'pctl tokens ls [--format json]', options: { ...connectionOptions, format }, run: async (i) => (await import('./tokens.ts')).tokensList(i) },
        { name: 'rm', aliases: ['remove', 'delete'], summary: 'remove a token by id', usage: 'pctl tokens rm ID', options: connectionOptions, run: async (i) => (await import('./tokens.ts')).tokensRemove(i) },
      ],
    },
    {
      name: 'nodes',
      summary: 'agents that joined: services, labels, online or offline',
      usage: 'pctl nodes ls [--format json]',
      commands: [
        { name: 'ls', aliases: ['list'], summary: 'list agents', usage: 'pctl nodes ls [--format json]', options: { ...connectionOptions, format }, run: async (i) => (await import('./nodes.ts')).nodesList(i) },
      ],
    },
    {
      name: 'clusters',
      summary: 'leaf clusters that trust this one: online or offline, last heartbeat, labels',
      usage: 'pctl clusters ls [--format json]\n  Remove a leaf\'s trust (cuts its users\' access at once): pctl rm remote_cluster/NAME',
      commands: [
        { name: 'ls', aliases: ['list'], summary: 'list leaf clusters', usage: 'pctl clusters ls [--format json]', options: { ...connectionOptions, format }, run: async (i) => (await import('./clusters.ts')).clustersList(i) },
      ],
    },
    {
      name: 'inventory',
      summary: 'what runs where: OS, kernel, CPU, memory, version of agents and proxies',
      usage: 'pctl inventory ls [--format json]',
      commands: [
        { name: 'ls', aliases: ['list'], summary: 'list the inventory', usage: 'pctl inventory ls [--format json]', options: { ...connectionOptions, format }, run: async (i) => (await import('./nodes.ts')).inventoryList(i) },
      ],
    },
    {
      name: 'get',
      summary: 'print resources (roles, users, tokens, ...)',
      usage: 'pctl get KIND[/NAME] [--format text|yaml|json]',
      options: { ...connectionOptions, format },
      examples: ['pctl get roles', 'pctl get role/access --format yaml'],
      run: async (i) => (await import('./resources.ts')).get(i),
    },
    {
      name: 'create',
      summary: 'create resources from YAML or JSON (several documents allowed)',
      usage: 'pctl create -f FILE [--force]',
      options: { ...connectionOptions, file: option('string', 'resource file, or - for stdin', { short: 'f' }), force: option('boolean', 'replace resources that exist') },
      examples: ['pctl create -f role.yaml', 'pctl get role/dev --format yaml | sed s/8h/4h/ | pctl create -f - --force'],
      run: async (i) => (await import('./resources.ts')).create(i),
    },
    {
      name: 'rm',
      aliases: ['delete'],
      summary: 'delete a resource',
      usage: 'pctl rm KIND/NAME',
      options: connectionOptions,
      run: async (i) => (await import('./resources.ts')).remove(i),
    },
    {
      name: 'audit',
      summary: 'search and export the audit log',
      usage: 'pctl audit search ...',
      commands: [
        {
          name: 'search',
          summary: 'events by time, type and user (newest first)',
          usage: 'pctl audit search [--from 2h|RFC3339] [--to ...] [--type T] [--user U] [--cluster LEAF] [--limit N] [--format text|json|yaml|jsonl]',
          options: {
            ...connectionOptions,
            from: option('string', 'start: an age such as 2h, or an RFC 3339 time'),
            to: option('string', 'end (exclusive)'),
            type: option('string', 'event type, e.g. user.login or session.* (repeatable)', { multiple: true }),
            user: option('string', 'only events of this user'),
            cluster: option('string', 'on a root: only the events forwarded from this leaf cluster (its events about root users)'),
            limit: option('string', 'at most N events (default 100)'),
            order: option('string', 'desc (default) or asc'),
            format: option('string', 'text, json, yaml or jsonl (for export)'),
          },
          examples: ['pctl audit search --from 1h --type user.login.failed', 'pctl audit search --from 30d --order asc --limit 10000 --format jsonl > audit.jsonl'],
          run: async (i) => (await import('./audit.ts')).auditSearch(i),
        },
      ],
    },
    {
      name: 'auth',
      summary: 'the cluster certificate authorities',
      usage: 'pctl auth export|sign ...',
      commands: [
        {
          name: 'export',
          summary: 'print CA public keys (OpenSSH, known_hosts, PEM or JWKS)',
          usage: 'pctl auth export [--type host|user|db-client|jwt] [--format openssh|known-hosts|pem|jwks]',
          options: { ...connectionOptions, type: option('string', 'which CA (default all)'), format: option('string', 'openssh (default), known-hosts, pem, jwks') },
          examples: ['pctl auth export --type user > /etc/ssh/postern_user_ca.pub   # for sshd TrustedUserCAKeys', 'pctl auth export --type host --format known-hosts >> ~/.ssh/known_hosts'],
          run: async (i) => (await import('./status.ts')).authExport(i),
        },
        {
          name: 'sign',
          summary: 'write a database server certificate and the db-client CA for certificate auth',
          usage: 'pctl auth sign --format=db --host NAME[,ALT...] --out DIR [--ttl 8760h]',
          options: {
            ...connectionOptions,
            format: option('string', 'db (a PostgreSQL / MariaDB server certificate)'),
            host: option('string', 'the database\'s host name, then further names or IP addresses, comma-separated'),
            out: option('string', 'directory to write server.crt, server.key, server.cas and db-client-ca.crt into'),
            ttl: option('string', 'lifetime (default and most: 2 years)'),
          },
          examples: [
            'pctl auth sign --format=db --host db.internal,10.0.0.5 --out /etc/postgresql/postern',
            '# postgresql.conf: ssl_cert_file=server.crt ssl_key_file=server.key ssl_ca_file=db-client-ca.crt; pg_hba.conf: hostssl all all 0.0.0.0/0 cert',
            '# MariaDB: ssl_cert=server.crt ssl_key=server.key ssl_ca=db-client-ca.crt; CREATE USER alice REQUIRE SUBJECT \'/CN=alice\'',
          ],
          run: async (i) => (await import('./auth-sign.ts')).authSign(i),
        },
      ],
    },
  ],
};
