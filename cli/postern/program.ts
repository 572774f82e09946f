/** `postern`: the daemon and its set-up. */
import { option, type Command } from '../command.ts';

export const program: Command = {
  name: 'postern',
  summary: 'run and set up Postern daemons (auth, proxy, agent)',
  usage: 'postern COMMAND [options]',
  examples: [
    'postern configure --cluster-name example -o /etc/postern.yaml',
    'postern start -c /etc/postern.yaml',
    'postern join --proxy proxy.example.com:3080 --token TOKEN --ca-pin sha256:...',
    'postern install systemd --role agent --write /etc/systemd/system',
    'postern demo',
    'postern version --format json',
  ],
  commands: [
    {
      name: 'start',
      summary: 'run the services enabled in postern.yaml until stopped (SIGTERM/SIGINT)',
      usage: 'postern start [-c FILE]',
      options: { config: option('string', 'config file (default $POSTERN_CONFIG or /etc/postern.yaml)', { short: 'c' }) },
      examples: ['postern start -c /etc/postern.yaml'],
      run: async (invocation) => (await import('./start.ts')).start(invocation),
    },
    {
      name: 'join',
      summary: 'join this host to a cluster as a node with a token and the CA pin; writes its identity',
      usage: 'postern join --proxy HOST:PORT --token TOKEN --ca-pin sha256:... [--name NODE] [--labels k=v] [--data-dir DIR]',
      options: {
        proxy: option('string', "the proxy's public address, host:port"),
        token: option('string', 'a join token (pctl tokens add --type=node)'),
        'ca-pin': option('string', "sha256:... pin of the cluster's CA (pctl status)"),
        name: option('string', 'the node name users address it by (default: this host name)'),
        labels: option('string', 'k=v labels for this node (repeatable or comma-separated)', { multiple: true }),
        'data-dir': option('string', 'where the identity is kept (default /var/lib/postern)'),
      },
      examples: ['postern join --proxy proxy.example.com:3080 --token 4f2c... --ca-pin sha256:9a1b... --labels env=prod'],
      run: async (invocation) => (await import('./join.ts')).join(invocation),
    },
    {
      name: 'configure',
      summary: 'write a commented, validated postern.yaml for a cluster host or an agent',
      usage: 'postern configure [--roles auth,proxy | agent | ssh] [--cluster-name NAME] [--proxy HOST:PORT --token T --ca-pin sha256:...] [-o FILE]',
      options: {
        output: option('string', 'write here instead of stdout (refuses to overwrite)', { short: 'o' }),
        roles: option('string', 'comma-separated: auth, proxy (cluster services); agent or ssh (an agent serving SSH) (default auth,proxy)'),
        'cluster-name': option('string', 'the cluster name (default: this host name)'),
        'data-dir': option('string', 'state folder (default /var/lib/postern)'),
        proxy: option('string', 'for agents: the proxy to join, host:port'),
        token: option('string', 'for agents: the join token'),
        'ca-pin': option('string', 'for agents: sha256:... pin of the cluster CA'),
        labels: option('string', 'for agents: k=v,k2=v2'),
        name: option('string', 'for agents: the node name (default: the host name)'),
      },
      examples: ['postern configure -o postern.yaml', 'postern configure --roles ssh --proxy proxy.example.com:3080 --token T --ca-pin sha256:... -o /etc/postern/agent.yaml'],
      run: async (invocation) => (await import('./configure.ts')).configure(invocation),
    },
    {
      name: 'install',
      summary: 'set this host up to run Postern under a service manager',
      usage: 'postern install systemd [--role agent|cluster] [--write PATH]',
      commands: [
        {
          name: 'systemd',
          summary: 'print or write the systemd unit for an agent host or a cluster (auth + proxy) host',
          usage: 'postern install systemd [--role agent|cluster] [--write PATH] [--bin PATH] [--config FILE] [--drain-seconds N]',
          options: {
            role: option('string', 'agent (default; runs as root so SSH sessions can become their users) or cluster (auth + proxy as user postern, sandboxed)'),
            write: option('string', 'write the unit here (a folder gets postern-agent.service or postern.service) instead of printing it'),
            bin: option('string', 'the installed binary (default /usr/local/bin/postern)'),
            config: option('string', 'the config file (default /etc/postern/agent.yaml or /etc/postern/cluster.yaml)'),
            'drain-seconds': option('string', 'how long SIGTERM lets sessions finish before closing them (default 30)'),
          },
          examples: [
            'postern install systemd --role agent',
            'postern install systemd --role cluster --write /etc/systemd/system && systemctl daemon-reload && systemctl enable --now postern',
          ],
          run: async (invocation) => (await import('./install.ts')).installSystemd(invocation),
        },
      ],
    },
    {
      name: 'demo',
      summary: 'start a local demo cluster on the embedded backend and print how to use it',
      usage: 'postern demo [--dir DIR]',
      options: { dir: option('string', 'where the demo keeps its state (default .data/demo)') },
      run: async (invocation) => (await import('./demo.ts')).demo(invocation),
    },
    {
      name: 'version',
      summary: 'print version, commit, Node.js version and build time',
      usage: 'postern version [--format text|json]',
      options: { format: option('string', 'text or json') },
      run: async (invocation) => (await import('./version.ts')).version(invocation),
    },
  ],
};
