#!/bin/sh
# slurm.sh - the Slurm runner against a real Slurm on this machine: starts a
# one-node cluster of its own (munged, slurmctld and slurmd in the
# foreground, with a key, socket, slurm.conf, state and spool in one
# temporary folder and ports picked at run time), waits until its node is
# idle, runs tests/integration/test_slurm against it, and stops every
# daemon by its pid at the end, also when something fails. Two runs at once
# do not collide. Without the Slurm packages (or root, which SlurmUser=root
# needs) it skips with status 77.
set -eu

PATH="$PATH:/usr/sbin:/sbin"
src="${PW_SRCDIR:-.}"
build="${PW_BUILDDIR:-.}"

for cmd in munged mungekey slurmctld slurmd sbatch squeue scancel scontrol sinfo timeout; do
	command -v "$cmd" >/dev/null ||
		{ echo "slurm: $cmd not found (Debian: munge slurmctld slurmd slurm-client)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "slurm: needs root (SlurmUser=root)"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pw-slurm.XXXXXX")
chmod 755 "$tmp" # munged wants its socket's folder searchable by all
munged_pid=""
ctld_pid=""
slurmd_pid=""
test_pid=""
export SLURM_CONF="$tmp/slurm.conf"

# stop PID: SIGTERM, then SIGKILL after 10 s.
stop() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null || :
	wait "$1" 2>/dev/null || :
}

# Processes of this cluster that outlived the daemons (job steps, tasks):
# their environment names this cluster's slurm.conf.
kill_strays() {
	for env in /proc/[0-9]*/environ; do
		pid=${env#/proc/}
		pid=${pid%/environ}
		[ "$pid" != $$ ] || continue
		cat "$env" 2>/dev/null | tr '\0' '\n' | grep -qxF "SLURM_CONF=$SLURM_CONF" &&
			kill -KILL "$pid" 2>/dev/null || :
	done
}

cleanup() {
	status=$?
	trap - EXIT INT TERM
	stop "$test_pid"
	if [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2>/dev/null; then
		scancel --partition=debug --full --signal=KILL 2>/dev/null || :
		i=0
		while [ -n "$(squeue --noheader 2>/dev/null)" ] && [ $i -lt 50 ]; do
			sleep 0.2
			i=$((i + 1))
		done
	fi
	stop "$slurmd_pid"
	stop "$ctld_pid"
	stop "$munged_pid"
	kill_strays
	if [ $status -ne 0 ] && [ $status -ne 77 ]; then
		for f in munged.out slurmctld.log slurmd.log; do
			echo "--- $f (last lines)"
			tail -n 30 "$tmp/$f" 2>/dev/null || :
		done
	fi
	if [ -n "${PW_KEEP_TMP:-}" ]; then
		echo "kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$src/tests/lib.sh"

# A TCP port that no socket uses (in any state) and that is not $1, below
# the kernel's ephemeral range: the other tests of `make check -j`
# leave thousands of outgoing connections in TIME_WAIT there, and a port
# one of them holds fails slurmctld's bind (three attempts in a row did).
free_port() {
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$low" -gt 21000 ] 2>/dev/null || low=32768
	while :; do
		n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		port=$((20000 + n % (low - 20000)))
		hex=$(printf '%04X' "$port")
		[ "$port" != "${1:-}" ] || continue
		awk -v h="$hex" 'NR > 1 && $2 ~ ":" h "$" { found = 1 }
			END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null || break
	done
	echo "$port"
}

# Whether the node is idle. Bounded: with no controller, sinfo retries for long.
node_idle() { [ "$(timeout 5 sinfo --noheader --nodes=pwnode --format=%t)" = idle ]; }

# wait_cluster SECONDS: until the node is idle. Fails at once when a daemon
# died (a port taken between free_port and its bind ends slurmctld).
wait_cluster() {
	end=$(($(date +%s) + $1))
	while [ "$(date +%s)" -lt "$end" ]; do
		kill -0 "$ctld_pid" 2>/dev/null && kill -0 "$slurmd_pid" 2>/dev/null || return 1
		node_idle && return 0
		sleep 0.2
	done
	return 1
}

# munge: its own key, socket, pid file and log.
mungekey --create --keyfile="$tmp/munge.key"
munged --foreground --key-file="$tmp/munge.key" --socket="$tmp/munge.sock" \
	--pid-file="$tmp/munged.pid" --log-file="$tmp/munged.log" \
	--seed-file="$tmp/munged.seed" >"$tmp/munged.out" 2>&1 &
munged_pid=$!
wait_for 10 munge --socket="$tmp/munge.sock" --no-input ||
	{ echo "slurm: munged did not start"; exit 1; }

# slurmctld and slurmd on fresh ports; a port taken meanwhile: try again.
mkdir "$tmp/state" "$tmp/spool"
for attempt in 1 2 3; do
	ctld_port=$(free_port)
	slurmd_port=$(free_port "$ctld_port")
	sed -e "s|@DIR@|$tmp|g" -e "s|@CTLD_PORT@|$ctld_port|g" \
		-e "s|@SLURMD_PORT@|$slurmd_port|g" "$src/tests/slurm/slurm.conf.in" >"$SLURM_CONF"
	slurmctld -D >"$tmp/slurmctld.out" 2>&1 &
	ctld_pid=$!
	slurmd -D -N pwnode >"$tmp/slurmd.out" 2>&1 &
	slurmd_pid=$!
	if wait_cluster 30; then
		break
	fi
	echo "slurm: the cluster did not come up on ports $ctld_port, $slurmd_port (attempt $attempt)"
	stop "$slurmd_pid"
	stop "$ctld_pid"
	ctld_pid=""
	slurmd_pid=""
	[ $attempt -lt 3 ] || exit 1
done
echo "slurm: cluster up in $tmp (slurmctld :$ctld_port, slurmd :$slurmd_port)"

# In the background, so that a signal to this script stops it at once; its
# projects go into $tmp too, so that nothing is left when it is stopped.
mkdir "$tmp/projects"
TMPDIR="$tmp/projects" "$build/tests/integration/test_slurm" &
test_pid=$!
status=0
wait "$test_pid" || status=$?
test_pid=""
exit $status
