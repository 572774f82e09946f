/** `psh`: the user's client. */
import { option, type Command } from '../command.ts';

const proxyOption = option('string', 'proxy address host:port');
const caPin = option('string', 'sha256:... pin of the cluster CA (first contact with a proxy)');

export const program: Command = {
  name: 'psh',
  summary: 'reach servers, databases, Kubernetes and apps through Postern with short-lived certificates',
  usage: 'psh COMMAND [options]',
  examples: [
    'psh signup --proxy proxy.example.com:3080 --token TOKEN --ca-pin sha256:...',
    'psh login --proxy proxy.example.com:3080 --user alice',
    'psh status',
    'psh ls',
    'psh ssh alice@web-1',
    'psh config >> ~/.ssh/config',
    'psh db login orders --db-user alice && psh db connect orders',
    'psh logout',
  ],
  commands: [
    {
      name: 'signup',
      summary: 'set your password with the one-time token from pctl users add / reset',
      usage: 'psh signup --proxy HOST:PORT --token TOKEN [--ca-pin sha256:...]',
      options: { proxy: proxyOption, token: option('string', 'the one-time sign-up or reset token'), 'ca-pin': caPin },
      run: async (i) => (await import('./signup.ts')).signup(i),
    },
    {
      name: 'login',
      summary: 'log in and store short-lived certificates under ~/.postern',
      usage: 'psh login --proxy HOST:PORT [--user NAME] [--otp CODE | --ask-otp] [--ttl 8h] [--ca-pin sha256:...]',
      options: {
        proxy: proxyOption,
        user: option('string', 'user name (default $USER)'),
        otp: option('string', 'the current one-time code, when a second factor is enrolled'),
        'ask-otp': option('boolean', 'prompt for the one-time code'),
        ttl: option('string', 'certificate lifetime to ask for (roles may shorten it)'),
        'ca-pin': caPin,
      },
      examples: ['psh login --proxy localhost:3080 --user alice --ca-pin sha256:...', 'echo "$PASSWORD" | psh login --proxy p:3080 --user ci-bot'],
      run: async (i) => (await import('./login.ts')).login(i),
    },
    {
      name: 'status',
      summary: 'who you are, your roles and logins, and when your certificates expire',
      usage: 'psh status [--proxy HOST:PORT] [--format json]',
      options: { proxy: proxyOption, format: option('string', 'text, json or yaml') },
      run: async (i) => (await import('./status.ts')).status(i),
    },
    {
      name: 'ls',
      summary: 'list the nodes you can reach',
      usage: 'psh ls [--proxy HOST:PORT] [--format json]',
      options: { proxy: proxyOption, format: option('string', 'text, json or yaml') },
      run: async (i) => (await import('./ls.ts')).ls(i),
    },
    {
      name: 'ssh',
      summary: 'run the system ssh to a node through the proxy',
      usage: 'psh ssh [--proxy HOST:PORT] [-t] [login@]NODE [COMMAND...]',
      options: { proxy: proxyOption, tty: option('boolean', 'force a terminal (ssh -t)', { short: 't' }), 'ssh-binary': option('string', 'the ssh program (default ssh)') },
      examples: ['psh ssh alice@web-1', 'psh ssh ubuntu@web-1 uptime'],
      run: async (i) => (await import('./ssh.ts')).ssh(i),
    },
    {
      name: 'config',
      summary: 'print an OpenSSH configuration that reaches nodes through the proxy',
      usage: 'psh config [--proxy HOST:PORT] [--hosts PATTERN]',
      options: { proxy: proxyOption, hosts: option('string', 'the Host pattern the block applies to (default *)') },
      examples: ['psh config --hosts "*.lab" >> ~/.ssh/config', 'ssh -F <(psh config) alice@web-1'],
      run: async (i) => (await import('./ssh.ts')).config(i),
    },
    {
      name: 'proxy',
      summary: 'connection helpers for other programs',
      usage: 'psh proxy ssh|db ...',
      commands: [
        {
          name: 'db',
          summary: 'a local listener for a logged-in database; with --tunnel, clients need no certificates',
          usage: 'psh proxy db DB [--port PORT] [--tunnel] [--proxy HOST:PORT]',
          options: { proxy: proxyOption, port: option('string', 'local port on 127.0.0.1 (default: a free one, printed)'), tunnel: option('boolean', 'authenticate for the client: plain connections to 127.0.0.1:PORT reach the database') },
          examples: ['psh proxy db orders --port 15432 --tunnel   # then: psql "host=127.0.0.1 port=15432 user=alice dbname=app"'],
          run: async (i) => (await import('./proxy-db.ts')).proxyDb(i),
        },
        {
          name: 'ssh',
          summary: "OpenSSH's ProxyCommand: carries stdin/stdout to a node's SSH service through the proxy",
          usage: 'psh proxy ssh [--proxy HOST:PORT] [login@]NODE[:PORT]',
          options: { proxy: proxyOption },
          examples: ['ssh -o "ProxyCommand=psh proxy ssh %r@%h:%p" alice@web-1'],
          run: async (i) => (await import('./proxy-ssh.ts')).proxySsh(i),
        },
      ],
    },
    {
      name: 'db',
      summary: 'databases: list, log in (a certificate routed to one), connect with its own client, log out',
      usage: 'psh db ls|login|connect|logout ...',
      commands: [
        { name: 'ls', aliases: ['list'], summary: 'list the databases you can see', usage: 'psh db ls [--format text|json|yaml]', options: { proxy: proxyOption, format: option('string', 'text, json or yaml') }, run: async (i) => (await import('./db.ts')).dbLs(i) },
        {
          name: 'login',
          summary: 'get a certificate routed to one database, as one database user',
          usage: 'psh db login DB --db-user USER [--db-name NAME]',
          options: { proxy: proxyOption, 'db-user': option('string', 'the database user (your roles\' db_users must allow it)'), 'db-name': option('string', 'the database name inside the server (default: the user\'s)') },
          examples: ['psh db login orders --db-user alice --db-name app'],
          run: async (i) => (await import('./db.ts')).dbLogin(i),
        },
        {
          name: 'connect',
          summary: 'run psql (PostgreSQL) or mariadb (MySQL) against a logged-in database through the proxy',
          usage: 'psh db connect DB [--client PATH] [-- CLIENT ARGS...]',
          options: { proxy: proxyOption, client: option('string', 'the client program (default psql, or mariadb for MySQL)') },
          examples: ['psh db connect orders', 'psh db connect orders -- -c "select 1"'],
          run: async (i) => (await import('./db.ts')).dbConnect(i),
        },
        { name: 'logout', summary: 'delete database certificates (one, or all)', usage: 'psh db logout [DB]', options: { proxy: proxyOption }, run: async (i) => (await import('./db.ts')).dbLogout(i) },
      ],
    },
    {
      name: 'logout',
      summary: 'delete keys and certificates (all profiles, or one)',
      usage: 'psh logout [--proxy HOST:PORT]',
      options: { proxy: proxyOption },
      run: async (i) => (await import('./status.ts')).logout(i),
    },
  ],
};
