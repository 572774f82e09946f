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
    'psh recordings ls',
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
      usage: 'psh ssh [--proxy HOST:PORT] [-t] [-A] [-L [BIND:]PORT:HOST:HOSTPORT]... [login@]NODE [COMMAND...]',
      options: {
        proxy: proxyOption,
        tty: option('boolean', 'force a terminal (ssh -t)', { short: 't' }),
        'forward-agent': option('boolean', 'forward your ssh-agent (ssh -A; a role must set options.permit_agent_forwarding: true)', { short: 'A' }),
        local: option('string', 'forward a local port to HOST:HOSTPORT as seen from the node (ssh -L; a role must set options.permit_port_forwarding: true); repeatable', { short: 'L', multiple: true }),
        'no-command': option('boolean', 'run no command, only forward ports (ssh -N)', { short: 'N' }),
        'ssh-binary': option('string', 'the ssh program (default ssh)'),
      },
      examples: ['psh ssh alice@web-1', 'psh ssh ubuntu@web-1 uptime', 'psh ssh -N -L 5433:localhost:5432 ubuntu@db-1', 'psh ssh -A alice@web-1 git pull'],
      verbatimAfter: 1,
      run: async (i) => (await import('./ssh.ts')).ssh(i),
    },
    {
      name: 'scp',
      summary: 'run the system scp to and from nodes through the proxy (the arguments are scp\'s)',
      usage: 'psh scp [--proxy HOST:PORT] [SCP OPTIONS] SOURCE... TARGET',
      options: { proxy: proxyOption, 'scp-binary': option('string', 'the scp program (default scp)') },
      verbatimAfter: 0,
      examples: ['psh scp ./app.tar.gz ubuntu@web-1:/tmp/', 'psh scp -r ubuntu@web-1:/var/log/app ./logs'],
      run: async (i) => (await import('./ssh.ts')).scp(i),
    },
    {
      name: 'config',
      summary: 'print an OpenSSH configuration that reaches nodes through the proxy',
      usage: 'psh config [--proxy HOST:PORT] [--hosts PATTERN] [--jump]',
      options: {
        proxy: proxyOption,
        hosts: option('string', 'the Host pattern the block applies to (default *)'),
        jump: option('boolean', "reach nodes with ProxyJump through the proxy's SSH jump server instead of ProxyCommand psh (no psh needed at connect time)"),
      },
      examples: ['psh config --hosts "*.lab" >> ~/.ssh/config', 'ssh -F <(psh config) alice@web-1', 'psh config --jump > ~/.ssh/postern && ssh -F ~/.ssh/postern alice@web-1'],
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
      ],
    },
    {
      name: 'recordings',
      summary: 'recorded SSH sessions',
      usage: 'psh recordings ls [--user NAME] [--format text|json|yaml]',
      commands: [
        {
          name: 'ls',
          summary: 'list recorded sessions: your own, or everyone\'s with a role allowing list on session_recording (auditor)',
          usage: 'psh recordings ls [--proxy HOST:PORT] [--user NAME] [--format text|json|yaml]',
          options: { proxy: proxyOption, user: option('string', 'only this user\'s sessions'), format: option('string', 'text, json or yaml') },
          examples: ['psh recordings ls', 'psh recordings ls --user bob --format json'],
          run: async (i) => (await import('./recordings.ts')).recordingsLs(i),
        },
      ],
    },
    {
      name: 'play',
      summary: 'replay a recorded session in this terminal, or print its asciicast file',
      usage: 'psh play [--speed N] [--idle-limit SECONDS] [--format terminal|asciicast] SESSION_ID',
      options: {
        proxy: proxyOption,
        speed: option('string', 'play N times faster (default 1)'),
        'idle-limit': option('string', 'cap pauses at this many seconds'),
        format: option('string', 'terminal (replay, default) or asciicast (print the file; asciinema plays it)'),
      },
      examples: ['psh play 5f0c…', 'psh play --speed 4 --idle-limit 1 5f0c…', 'psh play --format asciicast 5f0c… > session.cast && asciinema play session.cast'],
      run: async (i) => (await import('./recordings.ts')).play(i),
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
