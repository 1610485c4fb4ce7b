#!/usr/bin/env bash
# Two "hosts" on one machine for scripts/mpi-check.sh --netns: network namespaces A and B joined
# by a veth pair (10.77.0.1 ↔ 10.77.0.2). mpirun runs in A and starts B's daemon through an agent
# script that runs `ip netns exec B` where a cluster runs ssh (plm_rsh_agent), so rank 1's TCP
# traffic crosses the veth link. Trains 6 bootmae steps on 2 ranks into WORK/netns and prints
# the bytes the link carried. Needs root and iproute2; removes what it made on exit.
#   usage: scripts/mpi-netns.sh WORK BIN
set -euo pipefail
WORK=$1; BIN=$2
[ "$(id -u)" -eq 0 ] || { echo "mpi-netns: needs root (ip netns)" >&2; exit 1; }
A="bmA$$"; B="bmB$$"
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add "va$$" type veth peer name "vb$$"
ip link set "va$$" netns "$A"; ip link set "vb$$" netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev "va$$"; ip -n "$B" addr add 10.77.0.2/24 dev "vb$$"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "va$$" up; ip -n "$B" link set "vb$$" up

# The launcher agent: mpirun calls it as `agent HOST COMMAND...` (like ssh). The daemon gets its
# own hostname too (a UTS namespace), so Open MPI sees two nodes.
agent="$WORK/netns-agent.sh"
cat > "$agent" <<AGENT
#!/bin/sh
host=\$1; shift
case "\$host" in
  10.77.0.2) exec ip netns exec $B unshare --uts sh -c 'hostname node-b; exec sh -c "\$0"' "\$*" ;;
  *) echo "netns agent: unknown host \$host" >&2; exit 1 ;;
esac
AGENT
chmod +x "$agent"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' > "$WORK/netns-hosts"

rx() { ip netns exec "$B" cat "/sys/class/net/vb$$/statistics/rx_bytes"; }
before=$(rx)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
timeout 300 ip netns exec "$A" unshare --uts sh -c 'hostname node-a; exec "$@"' sh \
  mpirun -np 2 --hostfile "$WORK/netns-hosts" --mca plm_rsh_agent "$agent" \
    --mca btl self,tcp --mca pml ob1 --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
    "$BIN" pretrain --objective bootmae --subset 256 --batch-size 64 --epochs 2 --max-steps 6 --threads 1 --out "$WORK/netns" \
    > "$WORK/netns.log" 2>&1 || { tail -30 "$WORK/netns.log" >&2; exit 1; }
echo "mpi-netns: the veth link carried $(( $(rx) - before )) bytes into namespace B during the run"
