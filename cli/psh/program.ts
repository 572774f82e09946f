/** `psh`: the user's client. */
import { option, type Command } from '../command.ts';

const proxyOption = option('string', 'proxy address host:port');
const clusterOption = option('string', 'a leaf cluster (psh clusters); default: where psh login routed you');
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
      usage: 'psh login --proxy HOST:PORT [--user NAME] [--otp CODE | --ask-otp] [--ttl 8h] [--ca-pin sha256:...]\n       psh login CLUSTER   (logged in already: route to a leaf cluster, or back to the root)',
      options: {
        proxy: proxyOption,
        user: option('string', 'user name (default $USER)'),
        otp: option('string', 'the current one-time code, when a second factor is enrolled'),
        'ask-otp': option('boolean', 'prompt for the one-time code'),
        ttl: option('string', 'certificate lifetime to ask for (roles may shorten it)'),
        'ca-pin': caPin,
      },
      examples: ['psh login --proxy localhost:3080 --user alice --ca-pin sha256:...', 'echo "$PASSWORD" | psh login --proxy p:3080 --user ci-bot', 'psh login leaf-eu   # then psh ls, psh ssh reach leaf-eu'],
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
      name: 'clusters',
      summary: 'the cluster you logged in to and the leaf clusters your roles reach',
      usage: 'psh clusters [--proxy HOST:PORT] [--format json]',
      options: { proxy: proxyOption, format: option('string', 'text, json or yaml') },
      run: async (i) => (await import('./clusters.ts')).clusters(i),
    },
    {
      name: 'ls',
      summary: 'list the nodes you can reach',
      usage: 'psh ls [--proxy HOST:PORT] [--cluster LEAF] [--format json]',
      options: { proxy: proxyOption, cluster: clusterOption, format: option('string', 'text, json or yaml') },
      run: async (i) => (await import('./ls.ts')).ls(i),
    },
    {
      name: 'ssh',
      summary: 'run the system ssh to a node through the proxy',
      usage: 'psh ssh [--proxy HOST:PORT] [--cluster LEAF] [-t] [login@]NODE [COMMAND...]',
      options: { proxy: proxyOption, cluster: clusterOption, tty: option('boolean', 'force a terminal (ssh -t)', { short: 't' }), 'ssh-binary': option('string', 'the ssh program (default ssh)') },
      examples: ['psh ssh alice@web-1', 'psh ssh ubuntu@web-1 uptime', 'psh ssh --cluster leaf-eu root@db-1 uptime'],
      run: async (i) => (await import('./ssh.ts')).ssh(i),
    },
    {
      name: 'config',
      summary: 'print an OpenSSH configuration that reaches nodes through the proxy',
      usage: 'psh config [--proxy HOST:PORT] [--cluster LEAF] [--hosts PATTERN]',
      options: { proxy: proxyOption, cluster: clusterOption, hosts: option('string', 'the Host pattern the block applies to (default *)') },
      examples: ['psh config --hosts "*.lab" >> ~/.ssh/config', 'ssh -F <(psh config) alice@web-1'],
      run: async (i) => (await import('./ssh.ts')).config(i),
    },
    {
      name: 'proxy',
      summary: 'connection helpers for other programs',
      usage: 'psh proxy ssh [login@]NODE[:PORT]',
      commands: [
        {
          name: 'ssh',
          summary: "OpenSSH's ProxyCommand: carries stdin/stdout to a node's SSH service through the proxy",
          usage: 'psh proxy ssh [--proxy HOST:PORT] [--cluster LEAF] [login@]NODE[:PORT]',
          options: { proxy: proxyOption, cluster: clusterOption },
          examples: ['ssh -o "ProxyCommand=psh proxy ssh %r@%h:%p" alice@web-1'],
          run: async (i) => (await import('./proxy-ssh.ts')).proxySsh(i),
        },
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
