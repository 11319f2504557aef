#!/usr/bin/env bash
# A throwaway one-node Ceph S3 server (1 mon, 1 OSD on a sparse BlueStore file, radosgw) on loopback for tests.
#
#   tests/services/radosgw.sh up [DIR]    build it in DIR (fresh), create a user, keys and a bucket, and write
#                                         DIR/s3.env (mode 0600) for FILESYNC_TEST_S3
#   tests/services/radosgw.sh down [DIR]  stop the daemons it started (by their recorded PIDs) and remove DIR
#
# DIR defaults to ${TMPDIR:-/tmp}/filesync-radosgw. Nothing is written to /etc/ceph or /var/lib/ceph; no systemd,
# no mgr (S3 does not need it), every port is a free loopback port picked at start, every wait is bounded.
# Needs the Debian packages radosgw ceph-mon ceph-osd ceph-common (.ci/run installs them).
set -euo pipefail

ACTION=${1:-}
DIR=${2:-${TMPDIR:-/tmp}/filesync-radosgw}
CONF=$DIR/ceph.conf
BUCKET=filesync-test
REGION=us-east-1
STEP_TIMEOUT=60
export CEPH_CONF=$CONF

START=$(date +%s.%N)
log() { printf "[radosgw.sh %5.1fs] %s\n" "$(awk -v a="$(date +%s.%N)" -v b="$START" "BEGIN { print a - b }")" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# ---------------------------------------------------------------- stopping (by recorded PID only)
ours() { # ours PID: alive and started with our ceph.conf
  kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$CONF"
}
stop_one() {
  local f=$DIR/run/$1.test.pid pid i
  [[ -s $f ]] || return 0
  pid=$(<"$f")
  if ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do ours "$pid" || break; sleep 0.1; done
    if ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    for ((i = 0; i < 50; i++)); do ours "$pid" || break; sleep 0.1; done
  fi
  rm -f "$f"
}
down() {
  for d in rgw osd.0 mon.a; do stop_one "$d"; done # gateway first, monitor last
  if [[ -f $CONF ]]; then
    rm -rf "$DIR"
  elif [[ -d $DIR && -n "$(ls -A "$DIR")" ]]; then
    die "refusing to remove $DIR: no ceph.conf of ours there"
  fi
}

case $ACTION in
down)
  down
  exit 0
  ;;
up) ;;
*)
  echo "usage: $0 up|down [DIR]" >&2
  exit 2
  ;;
esac

# ---------------------------------------------------------------- up: from scratch
for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool ceph curl; do
  command -v "$b" >/dev/null || die "$b is missing: apt-get install radosgw ceph-mon ceph-osd ceph-common curl"
done
[[ -e $DIR ]] && down
mkdir -p "$DIR"/{run,log,crash,rgw}
chmod 700 "$DIR"
trap 'code=$?; if ((code)); then log "failed: stopping what was started"; down; fi' EXIT

# Free loopback ports, picked by binding port 0 (Ceph's own ms_bind range picks the OSD's).
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MON_V2=$(free_port)
MON_V1=$(free_port)
RGW_PORT=$(free_port)
ENDPOINT=http://127.0.0.1:$RGW_PORT
ACCESS=$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
SECRET=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
FSID=$(cat /proc/sys/kernel/random/uuid)

cat >"$CONF" <<EOF
# written by tests/services/radosgw.sh: a one-node test cluster on loopback
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
public_network = 127.0.0.0/8
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
pid_file = $DIR/run/\$name.pid
log_file = $DIR/log/\$name.log
crash_dir = $DIR/crash
log_to_stderr = false
err_to_stderr = true
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
mon_max_pg_per_osd = 1000
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0

[mon]
mon_data = $DIR/mon.\$id
paxos_propose_interval = 0.05

[osd]
osd_data = $DIR/osd.\$id
osd_objectstore = bluestore
osd_memory_target = 536870912
bluestore_block_create = true
bluestore_block_size = 8589934592
bluestore_block_db_create = false
bluestore_block_wal_create = false
bluestore_fsck_on_mkfs = false
bluestore_fsck_on_mount = false

[client.rgw.a]
# radosgw otherwise insists on cephx and a secure mon session, which "auth none" never grants (it hangs)
auth_client_required = none
ms_mon_client_mode = crc
keyring = /dev/null
rgw_data = $DIR/rgw
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw_thread_pool_size = 64
rgw_enable_usage_log = false
EOF

CEPH() { timeout 30 ceph --connect-timeout 10 "$@"; }
start_daemon() { # start_daemon NAME CMD ARGS...: detached, its PID recorded for down
  local name=$1
  shift
  setsid "$@" -f -c "$CONF" >>"$DIR/log/$name.stdout" 2>&1 </dev/null &
  echo $! >"$DIR/run/$name.test.pid"
}
wait_for() { # wait_for WHAT DAEMON CMD...
  local what=$1 daemon=$2 deadline=$(($(date +%s) + STEP_TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! ours "$(<"$DIR/run/$daemon.test.pid")"; then
      tail -n 20 "$DIR/log/$daemon.stdout" "$DIR/log/"*"$daemon"*.log >&2 2>/dev/null || true
      die "$daemon died while waiting for: $what"
    fi
    (($(date +%s) < deadline)) || die "timed out after ${STEP_TIMEOUT}s waiting for: $what"
    sleep 0.2
  done
  log "ok: $what"
}

timeout 30 monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" \
  "$DIR/monmap" >/dev/null
timeout 30 ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
timeout 60 ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" \
  >>"$DIR/log/mkfs.log" 2>&1 || die "ceph-mon --mkfs failed (see $DIR/log/mkfs.log)"
start_daemon mon.a ceph-mon -i a
wait_for "mon quorum" mon.a CEPH quorum_status

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
id=$(CEPH osd new "$OSD_UUID") || die "ceph osd new failed"
[[ $id == 0 ]] || die "expected osd id 0, got '$id'"
mkdir -p "$DIR/osd.0"
# BlueStore on a sparse file in the folder (no block device needed); it survives an OSD restart.
timeout 120 ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$DIR/log/mkfs.log" 2>&1 ||
  die "ceph-osd --mkfs failed (see $DIR/log/mkfs.log)"
start_daemon osd.0 ceph-osd -i 0
osd_up() { [[ $(CEPH osd stat --format json) == *'"num_up_osds":1'* ]]; }
wait_for "osd.0 up" osd.0 osd_up

# radosgw would create its pools one by one, each waiting for its PGs: made together up front, it is faster.
timeout 60 /usr/bin/python3 - "$CONF" <<'PY' || die "creating the radosgw pools failed"
import json, sys, rados
c = rados.Rados(conffile=sys.argv[1]); c.connect(timeout=20)
for p in [".rgw.root", "default.rgw.log", "default.rgw.control", "default.rgw.meta",
          "default.rgw.buckets.index", "default.rgw.buckets.data", "default.rgw.buckets.non-ec"]:
    for cmd in ({"prefix": "osd pool create", "pool": p, "pg_num": 8, "pgp_num": 8},
                {"prefix": "osd pool application enable", "pool": p, "app": "rgw"}):
        ret, out, err = c.mon_command(json.dumps(cmd), b"", timeout=30)
        if ret != 0:
            sys.exit(f"{cmd}: {ret} {err}")
c.shutdown()
PY

start_daemon rgw radosgw -n client.rgw.a
rgw_http() { [[ $(curl -s -o /dev/null -m 5 -w '%{http_code}' "$ENDPOINT/") == 200 ]]; }
wait_for "radosgw on $ENDPOINT" rgw rgw_http

timeout 60 radosgw-admin -c "$CONF" user create --uid=filesync-test --display-name="filesync tests" \
  --access-key="$ACCESS" --secret-key="$SECRET" >/dev/null 2>>"$DIR/log/mkfs.log" ||
  die "radosgw-admin user create failed (see $DIR/log/mkfs.log)"
# curl signs SigV4 itself; radosgw also wants x-amz-content-sha256. The keys go through a private file, not argv.
CURL_CONFIG=$DIR/curl.config
(
  umask 077
  printf 'user = "%s:%s"\n' "$ACCESS" "$SECRET" >"$CURL_CONFIG"
)
s3curl() { curl -s -m 20 -K "$CURL_CONFIG" --aws-sigv4 "aws:amz:$REGION:s3" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }
code=$(s3curl -o "$DIR/log/bucket.out" -w '%{http_code}' -X PUT "$ENDPOINT/$BUCKET") || true
[[ $code == 200 ]] || die "creating bucket $BUCKET returned HTTP $code: $(cat "$DIR/log/bucket.out")"
# The first object write makes radosgw set up the data pool: done now, not in the first test.
code=$(s3curl -o /dev/null -w '%{http_code}' -X PUT --data-binary warm "$ENDPOINT/$BUCKET/warm-up") || true
[[ $code == 200 ]] || die "warm-up PUT returned HTTP $code"
s3curl -o /dev/null -X DELETE "$ENDPOINT/$BUCKET/warm-up" || true
rm -f "$CURL_CONFIG"

(
  umask 077
  cat >"$DIR/s3.env" <<EOF
S3_ENDPOINT=$ENDPOINT
S3_REGION=$REGION
S3_BUCKET=$BUCKET
AWS_ACCESS_KEY_ID=$ACCESS
AWS_SECRET_ACCESS_KEY=$SECRET
EOF
)
trap - EXIT
log "ready: $DIR/s3.env"
echo "$DIR/s3.env"
