#!/usr/bin/env bash
# A real single-node SLURM cluster on 127.0.0.1 for the SLURM tests (Debian 12, run as root).
#
#   tests/slurm/local_cluster.sh start    install packages if missing, write config, start munged/slurmctld/slurmd
#   tests/slurm/local_cluster.sh stop     stop the daemons this script started (by their saved PIDs)
#   tests/slurm/local_cluster.sh status   exit 0 when the node is up and idle
#
# State, logs and the PID file live in $MOSARE_SLURM_DIR (default /tmp/mosare-slurm). slurm.conf must live at
# /etc/slurm/slurm.conf: the snakemake slurm plugin strips SLURM_CONF before its nested srun.
set -euo pipefail

STATE_DIR=${MOSARE_SLURM_DIR:-/tmp/mosare-slurm}
PID_FILE=$STATE_DIR/pids
SLURM_CONF_FILE=/etc/slurm/slurm.conf
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { echo "local_cluster: $*" >&2; }

require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        log "must run as root (installs packages, writes /etc/slurm/slurm.conf)"
        exit 1
    fi
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    log "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null
    fi
}

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

saved_pid() {  # saved_pid NAME -> the PID saved for that daemon, if any
    [[ -f $PID_FILE ]] && awk -v name="$1" '$1 == name {print $2}' "$PID_FILE" || true
}

node_state() { sinfo --noheader --nodes=localhost --format=%T 2>/dev/null | head -n1 || true; }

is_running() {
    local name
    for name in munged slurmctld slurmd; do
        alive "$(saved_pid "$name")" || return 1
    done
    [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]
}

write_munge_key() {
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
}

write_slurm_conf() {
    # Hardware line from slurmd -C, renamed to the node we run (slurmd -N localhost on 127.0.0.1).
    local hardware
    hardware=$(slurmd -C | head -n1 | sed -E 's/^NodeName=[^ ]+//')
    mkdir -p /etc/slurm "$STATE_DIR"/{state,spool,log}
    cat >"$SLURM_CONF_FILE" <<EOF
# Written by tests/slurm/local_cluster.sh: single-node test cluster, no accounting.
ClusterName=mosare-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for an hour: the plugin polls them, and the tests read every job's
# final state after the whole run (6 minutes on 2 busy cores; the default 300 s purged the first jobs).
MinJobAge=3600
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 4))); do
        "$@" && return 0
        sleep 0.25
    done
    log "timed out after ${seconds}s waiting for $what; logs in $STATE_DIR/log"
    return 1
}

pid_from_file() { [[ -s $1 ]] && cat "$1" || true; }
has_pid_file() { [[ -s $1 ]]; }
node_idle() { [[ $(node_state) == idle ]]; }

start() {
    require_root
    if is_running; then
        log "already running (node $(node_state)); PIDs in $PID_FILE"
        return
    fi
    stop_daemons
    install_packages
    write_munge_key
    write_slurm_conf
    rm -f "$STATE_DIR"/*.pid /run/munge/munged.pid

    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    wait_for 10 munged has_pid_file /run/munge/munged.pid
    slurmctld
    wait_for 20 slurmctld has_pid_file "$STATE_DIR/slurmctld.pid"
    slurmd -N localhost
    wait_for 20 slurmd has_pid_file "$STATE_DIR/slurmd.pid"
    {
        echo "munged $(pid_from_file /run/munge/munged.pid)"
        echo "slurmctld $(pid_from_file "$STATE_DIR/slurmctld.pid")"
        echo "slurmd $(pid_from_file "$STATE_DIR/slurmd.pid")"
    } >"$PID_FILE"
    wait_for 30 "node localhost to become idle" node_idle
    log "running: $(sinfo --noheader --format='partition=%P nodes=%N state=%T cpus=%c memory=%mMB')"
}

stop_daemons() {
    local name pid
    for name in slurmd slurmctld munged; do
        pid=$(saved_pid "$name")
        if alive "$pid"; then
            kill "$pid"
            for _ in $(seq 40); do alive "$pid" || break; sleep 0.25; done
            alive "$pid" && kill -9 "$pid"
        fi
    done
    rm -f "$PID_FILE"
}

stop() {
    require_root
    stop_daemons
    log "stopped"
}

status() {
    if is_running; then
        log "running (node $(node_state)); PIDs in $PID_FILE"
    else
        log "not running"
        return 1
    fi
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
