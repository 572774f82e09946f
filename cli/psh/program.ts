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
    'psh apps ls',
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
      usage: 'psh proxy ssh [login@]NODE[:PORT]',
      commands: [
        {
          name: 'ssh',
          summary: "OpenSSH's ProxyCommand: carries stdin/stdout to a node's SSH service through the proxy",
          usage: 'psh proxy ssh [--proxy HOST:PORT] [login@]NODE[:PORT]',
          options: { proxy: proxyOption },
          examples: ['ssh -o "ProxyCommand=psh proxy ssh %r@%h:%p" alice@web-1'],
          run: async (i) => (await import('./proxy-ssh.ts')).proxySsh(i),
        },
        {
          name: 'app',
          summary: 'a local listener whose connections reach a TCP app through the proxy',
          usage: 'psh proxy app NAME [--port PORT] [--proxy HOST:PORT]',
          options: { proxy: proxyOption, port: option('string', 'local port on 127.0.0.1 (default: a free one, printed)') },
          examples: ['psh apps login pg-admin && psh proxy app pg-admin --port 15432'],
          run: async (i) => (await import('./apps.ts')).proxyApp(i),
        },
      ],
    },
    {
      name: 'kube',
      summary: 'Kubernetes clusters behind agents, for plain kubectl',
      usage: 'psh kube ls | login CLUSTER | credentials CLUSTER',
      commands: [
        {
          name: 'ls',
          summary: 'list the Kubernetes clusters you can reach',
          usage: 'psh kube ls [--proxy HOST:PORT] [--format text|json|yaml]',
          options: { proxy: proxyOption, format: option('string', 'text, json or yaml') },
          run: async (i) => (await import('./kube.ts')).kubeLs(i),
        },
        {
          name: 'login',
          summary: 'get a certificate for one cluster and make it the current kubectl context',
          usage: 'psh kube login CLUSTER [--exec] [--kubeconfig FILE] [--proxy HOST:PORT]',
          options: {
            proxy: proxyOption,
            kubeconfig: option('string', 'kubeconfig to write (default $KUBECONFIG or ~/.kube/config)'),
            exec: option('boolean', 'kubectl runs psh kube credentials for a certificate (renewed with psh login) instead of reading files'),
          },
          examples: ['psh kube login prod && kubectl get pods', 'psh kube login prod --exec'],
          run: async (i) => (await import('./kube.ts')).kubeLogin(i),
        },
        {
          name: 'credentials',
          summary: "kubectl's exec credential plugin (written by psh kube login --exec); prints an ExecCredential",
          usage: 'psh kube credentials CLUSTER [--proxy HOST:PORT]',
          options: { proxy: proxyOption },
          run: async (i) => (await import('./kube.ts')).kubeCredentials(i),
        },
      ],
    },
    {
      name: 'apps',
      summary: 'HTTP and TCP applications behind agents',
      usage: 'psh apps ls | login NAME | config NAME',
      commands: [
        {
          name: 'ls',
          summary: 'list the apps you can reach',
          usage: 'psh apps ls [--proxy HOST:PORT] [--format text|json|yaml]',
          options: { proxy: proxyOption, format: option('string', 'text, json or yaml') },
          run: async (i) => (await import('./apps.ts')).appsLs(i),
        },
        {
          name: 'login',
          summary: 'get a certificate routed to one app (for curl and psh proxy app)',
          usage: 'psh apps login NAME [--proxy HOST:PORT]',
          options: { proxy: proxyOption },
          examples: ['psh apps login grafana && eval "$(psh apps config grafana)"'],
          run: async (i) => (await import('./apps.ts')).appsLogin(i),
        },
        {
          name: 'config',
          summary: 'print the curl command (or, with --format json, the files and URL) for an app',
          usage: 'psh apps config NAME [--proxy HOST:PORT] [--format text|json|yaml]',
          options: { proxy: proxyOption, format: option('string', 'text, json or yaml') },
          examples: ['psh apps config grafana', '$(psh apps config grafana) -s'],
          run: async (i) => (await import('./apps.ts')).appsConfig(i),
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
