#!/usr/bin/env bash
# A real S3-compatible server on loopback: a one-node Ceph cluster (monitor, one OSD, RGW).
#
#   scripts/ceph_s3.sh install              apt packages (root): ceph-mon ceph-osd radosgw
#   scripts/ceph_s3.sh start                start; prints the endpoint; idempotent
#   scripts/ceph_s3.sh user UID KEY SECRET  create an S3 user (tenant) with these keys
#   scripts/ceph_s3.sh stop                 stop every daemon by its process id
#   scripts/ceph_s3.sh stop-rgw | start-rgw restart only the S3 gateway (fault tests)
#   scripts/ceph_s3.sh status
#
# CEPH_S3_DIR (default /tmp/vault-ceph) holds config, data, logs and pid files;
# CEPH_S3_PORT (default 7480) is the S3 port. The OSD keeps data in memory (memstore), so a
# stop loses everything: this is a test server. S3 SigV4, users, bucket ownership and bucket
# policies are enforced by RGW as on any Ceph deployment.
set -euo pipefail

DIR="${CEPH_S3_DIR:-/tmp/vault-ceph}"
PORT="${CEPH_S3_PORT:-7480}"
MON_PORT="${CEPH_S3_MON_PORT:-6789}"
CONF="$DIR/ceph.conf"
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "ceph_s3: $*" >&2; }

install() {
  if command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null; then
    return 0
  fi
  log "installing ceph-mon ceph-osd radosgw from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ceph-mon ceph-osd radosgw ceph-common uuid-runtime >/dev/null
}

running() { [ -f "$DIR/run/$1.pid" ] && kill -0 "$(cat "$DIR/run/$1.pid")" 2>/dev/null; }

write_conf() {
  mkdir -p "$DIR"/{run,log,mon/a,osd/0,rgw}
  local fsid
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  cat >"$CONF" <<CONF
[global]
fsid = $fsid
mon host = 127.0.0.1:$MON_PORT
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms bind msgr2 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
keyring = $DIR/keyring

[mon.a]
mon data = $DIR/mon/a
mon addr = 127.0.0.1:$MON_PORT

[osd.0]
osd data = $DIR/osd/0
osd objectstore = memstore
memstore device bytes = 4294967296

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $DIR/rgw
rgw dns name = 127.0.0.1
pid file = $DIR/run/rgw.pid
CONF
}

start_rgw() {
  running rgw && return 0
  radosgw -c "$CONF" -n client.rgw.a
  for _ in $(seq 1 600); do
    if curl -s -o /dev/null "$ENDPOINT"; then log "S3 endpoint $ENDPOINT is up"; return 0; fi
    sleep 0.1
  done
  log "RGW did not answer on $ENDPOINT; see $DIR/log/client.rgw.a.log"; return 1
}

# A freshly started OSD can ask the monitor to register it before it has the cluster's fsid
# ("mon_cmd_maybe_osd_create fail: 'wrong fsid'") and exit; a second start gets it right.
start_osd() {
  local attempt
  for attempt in 1 2 3 4 5; do
    if ceph-osd -c "$CONF" -i 0; then return 0; fi
    log "ceph-osd exited at start (attempt $attempt of 5); see $DIR/log/osd.0.log"
    sleep 1
  done
  return 1
}

start() {
  install
  if running mon.a && running osd.0; then start_rgw; echo "$ENDPOINT"; return 0; fi
  stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
  write_conf
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$(awk '/^fsid/ {print $3}' "$CONF")" \
    --add a "127.0.0.1:$MON_PORT" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
  ceph-mon -c "$CONF" -i a
  ceph -c "$CONF" osd create >/dev/null
  ceph-osd -c "$CONF" -i 0 --mkfs >/dev/null 2>&1
  start_osd
  start_rgw
  echo "$ENDPOINT"
}

user() {
  local uid="$1" key="$2" secret="$3"
  radosgw-admin -c "$CONF" user info --uid="$uid" >/dev/null 2>&1 && return 0
  radosgw-admin -c "$CONF" user create --uid="$uid" --display-name="$uid" \
    --access-key="$key" --secret-key="$secret" >/dev/null
}

stop_one() {
  local pidfile="$DIR/run/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop() { stop_one rgw; stop_one osd.0; stop_one mon.a; log "stopped"; }

status() {
  for d in mon.a osd.0 rgw; do
    if running "$d"; then echo "$d running (pid $(cat "$DIR/run/$d.pid"))"; else echo "$d stopped"; fi
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  start-rgw) start_rgw ;;
  stop-rgw) stop_one rgw ;;
  user) shift; user "$@" ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|start-rgw|stop-rgw|user UID KEY SECRET|status" >&2; exit 2 ;;
esac
