#!/usr/bin/env bash
# Builds the Debian package, installs it with dpkg, starts the server as the unit would (the
# unit's ExecStart, as the package's user; no systemd needed), runs `wsus-edge status` the
# way an admin on the box would (as root, the packaged config found by default), and purges.
#
#   deploy/test-deb.sh                 # profile deb-ci (fast to build; what CI runs)
#   PROFILE=release deploy/test-deb.sh # the shipped build
#
# Needs root, dpkg and cargo-deb (`cargo install cargo-deb`). Refuses to run when a
# wsus-edge package is already installed (it would be purged).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-deb-ci}

[ "$(id -u)" = 0 ] || { echo "test-deb: needs root (dpkg -i)" >&2; exit 2; }
command -v dpkg >/dev/null || { echo "test-deb: needs dpkg" >&2; exit 2; }
cargo deb --version >/dev/null 2>&1 || { echo "test-deb: needs cargo-deb (cargo install cargo-deb)" >&2; exit 2; }
if dpkg -s wsus-edge >/dev/null 2>&1; then
  echo "test-deb: a wsus-edge package is already installed; not touching it" >&2
  exit 2
fi

start=$(date +%s)
if [ "$PROFILE" = release ]; then
  cargo deb --locked
else
  cargo deb --locked --profile "$PROFILE"
fi
deb=$(ls -t target/debian/wsus-edge_*.deb | head -1)
echo "test-deb: built $deb in $(( $(date +%s) - start ))s"

pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  dpkg --purge wsus-edge >/dev/null 2>&1 || true
  rm -rf /var/lib/wsus-edge
  userdel wsus-edge 2>/dev/null || true
  groupdel wsus-edge 2>/dev/null || true
}
trap cleanup EXIT
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

# What the package holds.
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/wsus-edge ./etc/wsus-edge/wsus-edge.toml ./usr/lib/sysusers.d/wsus-edge.conf \
         ./usr/lib/tmpfiles.d/wsus-edge.conf ./usr/share/doc/wsus-edge/README.md; do
  grep -q " $f\$" <<<"$contents" || fail "$f not in the package"
done
grep -Eq " \./(usr/)?lib/systemd/system/wsus-edge\.service\$" <<<"$contents" || fail "unit not in the package"
# Captured first, grepped after: `dpkg-deb | grep -q` under pipefail fails whenever grep exits
# before dpkg-deb's last write (SIGPIPE), which a loaded machine makes likely.
info=$(dpkg-deb --info "$deb")
grep -q conffiles <<<"$info" || { echo "$info" >&2; fail "no conffiles"; }
tmp=$(mktemp -d)
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$tmp" ./conffiles
grep -qx "/etc/wsus-edge/wsus-edge.toml" "$tmp/conffiles" || fail "config is not a conffile"
rm -rf "$tmp"

dpkg -i "$deb"
# Stripped = no .symtab section. `readelf` (binutils) or `file` says so; a machine with neither
# skips the check rather than fail on a missing tool.
if command -v readelf >/dev/null; then
  sections=$(readelf -S --wide /usr/bin/wsus-edge)
  grep -q '\.symtab' <<<"$sections" && fail "binary not stripped (it has .symtab)"
elif command -v file >/dev/null; then
  kind=$(file /usr/bin/wsus-edge)
  grep -q "not stripped" <<<"$kind" && fail "binary not stripped: $kind"
else
  echo "test-deb: note: neither readelf nor file here; the stripped check is skipped"
fi
getent passwd wsus-edge >/dev/null || fail "no wsus-edge user"
[ "$(stat -c %U:%a /var/lib/wsus-edge)" = "wsus-edge:750" ] || fail "data dir: $(stat -c %U:%a /var/lib/wsus-edge)"
unit=$(ls /lib/systemd/system/wsus-edge.service /usr/lib/systemd/system/wsus-edge.service 2>/dev/null | head -1)
[ -n "$unit" ] || fail "unit not installed"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/bin/wsus-edge --config /etc/wsus-edge/wsus-edge.toml serve" ] || fail "ExecStart: $exec_start"
wsus-edge check-config >/dev/null || fail "check-config on the installed config"

# Start it as the unit would: its ExecStart as its user. Ports: the packaged ones unless
# taken on this machine (then the same config with free ports through the environment).
env_ports=()
if (exec 3<>/dev/tcp/127.0.0.1/8530) 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/8590) 2>/dev/null; then
  env_ports=(WSUS_EDGE_SERVER_LISTEN=0.0.0.0:0 WSUS_EDGE_ADMIN_LISTEN=127.0.0.1:18590)
fi
log=$(mktemp)
setpriv --reuid=wsus-edge --regid=wsus-edge --init-groups \
  env -i PATH=/usr/bin:/bin "${env_ports[@]}" $exec_start 2>"$log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "admin API on" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "server exited"; }
  sleep 0.1
done
grep -q "admin API on" "$log" || { cat "$log" >&2; fail "admin API did not start"; }
grep -q $'\e\[' "$log" && fail "ANSI colour in a log that is not a terminal"

# The admin's view: root, no flags, the packaged config found by default.
admin_env=()
[ ${#env_ports[@]} -gt 0 ] && admin_env=(WSUS_EDGE_ADMIN_LISTEN=127.0.0.1:18590)
set +e
env "${admin_env[@]}" wsus-edge status
code=$?
set -e
# 0 healthy, 1 problems reported (a fresh disconnected server has no content yet): both
# mean the CLI reached the server with the token. 3/4 = not reached / token refused.
[ "$code" = 0 ] || [ "$code" = 1 ] || { cat "$log" >&2; fail "wsus-edge status exited $code"; }
# A reader that stops early (`| head`) ends the CLI by SIGPIPE (141), never by a panic (101).
set +e
env "${admin_env[@]}" wsus-edge status --json | head -c 1 >/dev/null
json_code=${PIPESTATUS[0]}
set -e
case "$json_code" in 0|1|141) ;; *) fail "wsus-edge status --json | head exited $json_code" ;; esac

kill -TERM "$pid"; wait "$pid" || fail "server did not stop cleanly on SIGTERM"
pid=""
[ "$(stat -c %U /var/lib/wsus-edge/admin.token)" = wsus-edge ] || fail "token file owner"

dpkg --purge wsus-edge
[ ! -e /usr/bin/wsus-edge ] && [ ! -e /etc/wsus-edge/wsus-edge.toml ] || fail "purge left files"
echo "test-deb: OK ($(( $(date +%s) - start ))s)"
