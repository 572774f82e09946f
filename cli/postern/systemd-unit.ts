/**
 * The systemd units `postern install systemd` writes, one per kind of host.
 *
 * - `postern-agent.service` (role agent): the SSH service starts login shells as
 *   the users who log in, so it runs as root and the sandboxing a unit can add would
 *   land inside every session: NoNewPrivileges would break sudo, ProtectSystem and
 *   ProtectHome would make /etc, /usr and home folders read-only for the admin who
 *   logged in, PrivateTmp would hide /tmp from scp. It gets only what does not leak
 *   into sessions (Restart, state and cache folders, file limits, KillMode=mixed so
 *   SIGTERM reaches the agent alone and it can drain sessions before the stop timeout).
 * - `postern.service` (role cluster: auth + proxy): no sessions, so it runs as the
 *   `postern` system user under the full sandbox: NoNewPrivileges, ProtectSystem=strict,
 *   ProtectHome, PrivateTmp, PrivateDevices, kernel and namespace protections, a
 *   syscall filter, and only CAP_NET_BIND_SERVICE (to bind 443).
 *
 * Both: StateDirectory (the config's data_dir), CacheDirectory (where the binary
 * unpacks its native addon: exec-capable, systemd exports it as $CACHE_DIRECTORY),
 * LimitNOFILE=65536 (one descriptor per tunnel stream and session), SIGHUP reloads.
 * MemoryDenyWriteExecute stays off in both: V8's JIT needs writable+executable pages.
 */
export type UnitRole = 'agent' | 'cluster';

export interface UnitOptions {
  role: UnitRole;
  /** The installed binary; /usr/local/bin/postern. */
  binary?: string;
  /** The config file; /etc/postern/agent.yaml or /etc/postern/cluster.yaml. */
  config?: string;
  /** Seconds SIGTERM drains sessions before systemd kills what is left. */
  drainSeconds?: number;
}

/** Names and folders per role; install.sh and `postern configure` use the same. */
export const unitLayout = {
  agent: { unit: 'postern-agent.service', config: '/etc/postern/agent.yaml', state: 'postern', cache: 'postern' },
  cluster: { unit: 'postern.service', config: '/etc/postern/cluster.yaml', state: 'postern-cluster', cache: 'postern-cluster' },
} as const;

/** The unit file text for `options.role`. */
export function renderUnit(options: UnitOptions): string {
  const layout = unitLayout[options.role];
  const binary = options.binary ?? '/usr/local/bin/postern';
  const config = options.config ?? layout.config;
  const drain = options.drainSeconds ?? 30;
  const what = options.role === 'agent' ? 'Postern agent (SSH and other services through reverse tunnels)' : 'Postern cluster (auth and proxy)';
  const lines = [
    `# ${layout.unit}: written by \`postern install systemd --role ${options.role}\`; docs/install.md explains each line.`,
    '[Unit]',
    `Description=${what}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=exec',
    `ExecStart=${binary} start -c ${config}`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'RestartSec=2s',
    // SIGTERM to the daemon only; it drains for `drain` seconds, then systemd SIGKILLs the rest.
    'KillMode=mixed',
    `TimeoutStopSec=${drain + 10}s`,
    `Environment=POSTERN_DRAIN_TIMEOUT=${drain}s`,
    'LimitNOFILE=65536',
    `StateDirectory=${layout.state}`,
    'StateDirectoryMode=0700',
    `CacheDirectory=${layout.cache}`,
    'CacheDirectoryMode=0700',
    'ConfigurationDirectory=postern',
    'ConfigurationDirectoryMode=0750',
    'UMask=0077',
  ];
  if (options.role === 'agent') {
    lines.push(
      '# Root, without NoNewPrivileges, ProtectSystem, ProtectHome or PrivateTmp: SSH sessions',
      '# are host logins and would inherit them (no sudo, read-only /etc and homes, a private /tmp).',
    );
  } else {
    lines.push(
      'User=postern',
      'Group=postern',
      'AmbientCapabilities=CAP_NET_BIND_SERVICE',
      'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'PrivateDevices=yes',
      'ProtectKernelTunables=yes',
      'ProtectKernelModules=yes',
      'ProtectKernelLogs=yes',
      'ProtectControlGroups=yes',
      'ProtectClock=yes',
      'ProtectHostname=yes',
      'RestrictNamespaces=yes',
      'RestrictRealtime=yes',
      'RestrictSUIDSGID=yes',
      'LockPersonality=yes',
      'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
      'SystemCallArchitectures=native',
      'SystemCallFilter=@system-service',
      '# No MemoryDenyWriteExecute: the V8 JIT needs it off.',
    );
  }
  lines.push('', '[Install]', 'WantedBy=multi-user.target');
  return lines.join('\n') + '\n';
}
