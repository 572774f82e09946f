#!/bin/sh
# Installs Postern's single binary and its systemd unit on a host, optionally joins
# the host to a cluster and starts the service. docs/install.md explains every step.
#
#   sudo ./install.sh --token TOKEN --proxy proxy.example.com:3080 --ca-pin sha256:... [--labels env=prod]
#   sudo ./install.sh --role cluster                     # auth + proxy host, as user postern
#   sudo ./install.sh                                    # upgrade in place (keeps config and identity)
#   sudo ./install.sh --uninstall [--purge]
#
# Order matters for a clean failure: the join (which checks the CA pin) runs first,
# into a scratch folder, with the binary being installed; nothing is written to the
# host until it has succeeded.
set -eu

usage() {
  cat <<'EOF'
install.sh — install the postern binary and its systemd unit, optionally join and start it

Usage: install.sh [--role agent|cluster] [--binary FILE] [--prefix DIR] [--destdir DIR]
                  [--token TOKEN --proxy HOST:PORT --ca-pin sha256:... [--labels k=v,...] [--name NODE]]
                  [--cluster-name NAME] [--no-start]
       install.sh --uninstall [--purge] [--role agent|cluster] [--prefix DIR] [--destdir DIR]

Options:
  --role ROLE        agent (default: serves SSH; runs as root) or cluster (auth + proxy; user postern)
  --binary FILE      the postern binary to install (default: ./postern beside this script, or ../dist/postern)
  --prefix DIR       where bin/ goes (default /usr/local)
  --destdir DIR      install into this folder as if it were / (packaging, tests; also $DESTDIR);
                     no user is created and systemctl is not run
  --token TOKEN      join with this token (pctl tokens add --type=node); needs --proxy and --ca-pin
  --proxy HOST:PORT  the proxy's public address
  --ca-pin PIN       sha256:... pin of the cluster CA (pctl status)
  --labels k=v,...   labels for this node
  --name NODE        the node name (default: this host name)
  --cluster-name N   for --role cluster: the cluster name (default: this host name)
  --no-start         write everything but do not enable or start the service
  --uninstall        stop and remove the service and the binary; keeps config and state
  --purge            with --uninstall: also remove /etc/postern, state, cache (and user postern)

Re-running upgrades in place: the binary and unit are replaced, the config and the
host identity are kept (a --token given again is ignored once the host has joined).
EOF
}

fail() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

role=agent binary='' prefix=/usr/local destdir=${DESTDIR:-}
token='' proxy='' ca_pin='' labels='' node_name='' cluster_name=''
start=yes uninstall=no purge=no
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --role|--binary|--prefix|--destdir|--token|--proxy|--ca-pin|--labels|--name|--cluster-name)
      [ $# -ge 2 ] || fail "$1 needs a value (see --help)"
      case "$1" in
        --role) role=$2 ;; --binary) binary=$2 ;; --prefix) prefix=$2 ;; --destdir) destdir=$2 ;;
        --token) token=$2 ;; --proxy) proxy=$2 ;; --ca-pin) ca_pin=$2 ;; --labels) labels=$2 ;;
        --name) node_name=$2 ;; --cluster-name) cluster_name=$2 ;;
      esac
      shift 2 ;;
    --no-start) start=no; shift ;;
    --uninstall) uninstall=yes; shift ;;
    --purge) purge=yes; shift ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done

case "$role" in
  agent) unit=postern-agent.service config_name=agent.yaml state=postern owner=root ;;
  cluster) unit=postern.service config_name=cluster.yaml state=postern-cluster owner=postern ;;
  *) fail "--role $role: expected agent or cluster" ;;
esac
case "$prefix" in /*) ;; *) fail "--prefix $prefix: expected an absolute path" ;; esac
if [ -n "$destdir" ]; then
  mkdir -p "$destdir" || fail "cannot create --destdir $destdir"
  destdir=$(cd "$destdir" && pwd)
fi
[ "$purge" = no ] || [ "$uninstall" = yes ] || fail "--purge only goes with --uninstall"

bindir=$prefix/bin
confdir=/etc/postern
config=$confdir/$config_name
statedir=/var/lib/$state
cachedir=/var/cache/$state
unitdir=/etc/systemd/system

# systemctl only on a live systemd host, never into a DESTDIR.
systemd_skip=''
if [ -n "$destdir" ]; then systemd_skip="installing into $destdir"
elif ! command -v systemctl >/dev/null 2>&1; then systemd_skip='systemctl is not installed'
elif [ ! -d /run/systemd/system ]; then systemd_skip='systemd is not running on this host'
fi

if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
  fail "needs root to install into / (run with sudo), or use --destdir DIR"
fi

if [ "$uninstall" = yes ]; then
  if [ -z "$systemd_skip" ]; then
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  else
    say "not stopping $unit: $systemd_skip"
  fi
  rm -f "$destdir$unitdir/$unit" "$destdir$bindir/psh" "$destdir$bindir/pctl" "$destdir$bindir/postern"
  [ -z "$systemd_skip" ] && systemctl daemon-reload || true
  rm -rf "$destdir$cachedir"
  if [ "$purge" = yes ]; then
    rm -rf "$destdir$statedir" "$destdir$config"
    rmdir "$destdir$confdir" 2>/dev/null || true
    if [ "$role" = cluster ] && [ -z "$destdir" ] && getent passwd postern >/dev/null 2>&1; then
      userdel postern 2>/dev/null || say "could not remove user postern; remove it with: userdel postern"
    fi
    say "removed $unit, the binary, $config, $statedir and $cachedir"
  else
    say "removed $unit and the binary; kept $config and $statedir (the host identity): --uninstall --purge removes them"
  fi
  exit 0
fi

# The binary to install.
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$binary" ]; then
  for candidate in "$here/postern" "$here/bin/postern" "$here/../dist/postern"; do
    if [ -f "$candidate" ]; then binary=$candidate; break; fi
  done
  [ -n "$binary" ] || fail "no postern binary beside this script; pass --binary FILE (npm run build makes dist/postern)"
fi
[ -f "$binary" ] && [ -x "$binary" ] || fail "--binary $binary: not an executable file"
version=$("$binary" version 2>&1) || fail "$binary does not run ($version); is it built for this machine (Linux x86-64, glibc 2.34+)?"

if [ -n "$token$proxy$ca_pin" ]; then
  [ "$role" = agent ] || fail "--token, --proxy and --ca-pin join agents; a cluster host needs none"
  [ -n "$token" ] && [ -n "$proxy" ] && [ -n "$ca_pin" ] || fail "joining needs all of --token, --proxy and --ca-pin"
fi

# Join first, into a scratch folder: a wrong pin or token fails here, before the host changes.
scratch=''
cleanup() { [ -z "$scratch" ] || rm -rf "$scratch"; }
trap cleanup EXIT
if [ -n "$token" ]; then
  if [ -f "$destdir$statedir/agent-identity.json" ]; then
    say "already joined ($destdir$statedir/agent-identity.json); keeping that identity and ignoring --token"
  else
    scratch=$(mktemp -d)
    # --token=VALUE: a token may start with a dash, which a separate argument would turn into an option.
    set -- join --proxy "$proxy" --token="$token" --ca-pin "$ca_pin" --data-dir "$scratch/state"
    [ -z "$labels" ] || set -- "$@" --labels "$labels"
    [ -z "$node_name" ] || set -- "$@" --name "$node_name"
    if ! joined=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin POSTERN_CACHE_DIR="$scratch/cache" "$binary" "$@" 2>&1); then
      echo "$joined" >&2
      fail "joining the cluster failed; nothing was installed (fix the cause above and run install.sh again)"
    fi
    echo "$joined"
  fi
fi

# The system user for cluster hosts (agents run as root: SSH sessions become their users).
if [ "$role" = cluster ]; then
  if [ -n "$destdir" ]; then
    say "not creating user postern: installing into $destdir"
    owner=root
  elif ! getent passwd postern >/dev/null 2>&1; then
    useradd --system --home-dir "$statedir" --no-create-home --shell /usr/sbin/nologin --user-group postern
    say "created system user postern"
  fi
fi

# The binary, replaced atomically (a running service keeps the old inode until restarted).
mkdir -p "$destdir$bindir"
cp "$binary" "$destdir$bindir/.postern.new"
chmod 0755 "$destdir$bindir/.postern.new"
mv -f "$destdir$bindir/.postern.new" "$destdir$bindir/postern"
for link in psh pctl; do ln -sfn postern "$destdir$bindir/$link"; done
say "installed $bindir/postern ($version)"

# Config, state and cache folders with tight permissions.
umask 077
mkdir -p "$destdir$confdir" "$destdir$statedir" "$destdir$cachedir"
chmod 0750 "$destdir$confdir"
chmod 0700 "$destdir$statedir" "$destdir$cachedir"
if [ -n "$scratch" ]; then
  cp -p "$scratch/state/"* "$destdir$statedir/"
fi
if [ -f "$destdir$config" ]; then
  say "keeping $config"
else
  if [ "$role" = agent ]; then
    set -- configure --roles agent --data-dir "$statedir" -o "$destdir$config"
    [ -z "$proxy" ] || set -- "$@" --proxy "$proxy"
    [ -z "$ca_pin" ] || set -- "$@" --ca-pin "$ca_pin"
    [ -z "$labels" ] || set -- "$@" --labels "$labels"
    [ -z "$node_name" ] || set -- "$@" --name "$node_name"
  else
    set -- configure --roles auth,proxy --data-dir "$statedir" -o "$destdir$config"
    [ -z "$cluster_name" ] || set -- "$@" --cluster-name "$cluster_name"
  fi
  written=$("$destdir$bindir/postern" "$@" 2>&1) || fail "writing $config failed: $written"
  say "wrote $config"
fi
chmod 0640 "$destdir$config"
if [ -z "$destdir" ]; then
  chown -R "$owner:$owner" "$destdir$statedir" "$destdir$cachedir"
  chown "root:$owner" "$destdir$confdir" "$destdir$config"
fi

# The unit.
mkdir -p "$destdir$unitdir"
"$destdir$bindir/postern" install systemd --role "$role" --bin "$bindir/postern" --config "$config" --write "$destdir$unitdir/$unit" 2>/dev/null
say "wrote $unitdir/$unit"

if [ -n "$systemd_skip" ]; then
  say "not running systemctl: $systemd_skip; on the host run: systemctl daemon-reload && systemctl enable --now ${unit%.service}"
elif [ "$start" = no ]; then
  systemctl daemon-reload
  say "not starting (--no-start); start with: systemctl enable --now ${unit%.service}"
else
  systemctl daemon-reload
  systemctl enable "$unit" >/dev/null 2>&1
  systemctl restart "$unit"
  say "started $unit (enabled at boot); logs: journalctl -u ${unit%.service} -f"
fi
