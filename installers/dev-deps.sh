#!/usr/bin/env bash
# Installs the Debian packages Postern's tests and benchmarks drive (real clients and
# throwaway servers). Idempotent: packages already present are skipped, and apt is
# not touched at all when nothing is missing.
set -euo pipefail

packages=(
  openssh-client openssh-server   # ssh, scp, sftp, ssh-keygen; sshd as a baseline and fixture
  openssl                         # openssl verify / x509 in PKI tests
  postgresql postgresql-client    # initdb throwaway clusters, psql, pgbench
  pgbouncer                       # the connection-pooler baseline of npm run bench -- db
  mariadb-server mariadb-client   # mariadb-install-db throwaway servers, mariadb, mysqlslap
  curl                            # HTTP app tests
  tmux                            # interactive terminal tests
  asciinema                       # plays Postern's SSH session recordings in tests
  procps                          # ps/pkill used by fixtures
  binutils                        # strip, for npm run build (the binary test)
  util-linux                      # setpriv: SSH sessions switch to the login's uid, gid and groups; unshare (confined binary test)
  systemd                         # systemd-analyze verify on the units postern install systemd writes
  xrdp xorgxrdp                   # the RDP desktop fixture (xrdp-sesman + xrdp + Xorg with xorgxrdp)
  x11-xserver-utils xterm socat   # the fixture's session (xsetroot, an xterm to type into) and its X socket bridges
  xclip                           # sets and reads the X clipboard in the xrdp session (clipboard tests)
  freerdp2-x11 xvfb               # xfreerdp under Xvfb: a reference RDP client for comparisons
  freerdp2-shadow-x11             # freerdp-shadow-cli /sec:nla over Xvfb: the NLA (CredSSP) host for engine tests
  chromium                        # headless browser for the web UI tests (playwright-core drives it)
  kubernetes-client               # kubectl against the Kubernetes forwarder
  wrk haproxy                     # npm run bench -- apps: load generator and TLS-terminating baseline
  nghttp2-client                  # h2load: HTTP/2 load for npm run bench -- apps and the app tests
)

# A command another package already provides: Debian's package would conflict with it
# (some images ship Google's `kubectl` package, which owns /usr/bin/kubectl too).
declare -A provided_by_command=([kubernetes-client]=kubectl)

missing=()
for package in "${packages[@]}"; do
  command_name="${provided_by_command[$package]:-}"
  if [ -n "$command_name" ] && command -v "$command_name" >/dev/null 2>&1; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "dev-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "dev-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
