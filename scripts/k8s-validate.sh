#!/usr/bin/env bash
# Offline checks of deploy/ (no cluster, no network beyond PyPI and apt), run by scripts/test.sh:
#  1. kubernetes-validate --strict (PyPI, in .venv-checks; the Kubernetes JSON schemas ship inside the
#     package) on every manifest, against the oldest and the newest Kubernetes version we support.
#     Unknown fields, wrong types and missing required fields fail. The ServiceMonitor is a CRD with
#     no bundled schema: kubernetes-validate can only warn about it, so that one warning is expected
#     and any other (an unknown kind or apiVersion) fails.
#  2. scripts/k8s_checks.py: the manifests against each other and against the server (selectors,
#     port names, probe routes, BOOTMAE_* env twins, QoS, grace period vs drain, HPA metric vs the
#     adapter rule vs the server's metric names) and the ServiceMonitor's fields.
#  3. promtool check config on the Prometheus configs (deploy/prometheus/prometheus.yml, and the
#     Kubernetes scrape job with its kubernetes_sd_configs swapped for static_configs: Debian's
#     Prometheus is built without Kubernetes discovery, so promtool rejects that one block).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/replicas.sh
VENV="$(realpath -m "${CHECKS_VENV:-.venv-checks}")"
# 1.27: the first where the PDB's unhealthyPodEvictionPolicy is on by default (beta); 1.37: the newest bundled.
KUBE_VERSIONS=(1.27.0 1.37.0)
PIN="kubernetes-validate==1.37.0"

apt_install k8s-validate "${REPLICA_PACKAGES[@]}" python3-venv   # promtool comes with prometheus
if ! "$VENV/bin/python" -c 'import kubernetes_validate.version as v, sys; sys.exit(v.__version__ != "1.37.0")' 2>/dev/null; then
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "$PIN"
fi

mapfile -t MANIFESTS < <(ls deploy/k8s/*.yaml deploy/k8s/monitoring/*.yaml | grep -v 'prometheus-scrape.yaml$')
args=()
for v in "${KUBE_VERSIONS[@]}"; do args+=(-k "$v"); done
out=$("$VENV/bin/kubernetes-validate" --strict "${args[@]}" "${MANIFESTS[@]}") || { echo "$out" >&2; echo "k8s-validate: FAIL: kubernetes-validate" >&2; exit 1; }
echo "$out" | grep -c '^INFO' | xargs -I{} echo "k8s-validate: kubernetes-validate --strict: {} resource × version checks passed (${KUBE_VERSIONS[*]})" >&2
unexpected=$(echo "$out" | grep '^WARN' | grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1" || true)
[ -z "$unexpected" ] || { echo "$unexpected" >&2; echo "k8s-validate: FAIL: resources without a schema" >&2; exit 1; }
echo "k8s-validate: ServiceMonitor (CRD, no bundled schema) left to scripts/k8s_checks.py" >&2

"$VENV/bin/python" scripts/k8s_checks.py >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
promtool check config deploy/prometheus/prometheus.yml >/dev/null
sed -e 's/kubernetes_sd_configs:/static_configs:/' -e 's/- role: pod/- targets: ["127.0.0.1:8080"]/' \
  deploy/k8s/monitoring/prometheus-scrape.yaml > "$tmp/prometheus-scrape.yml"
grep -q 'kubernetes_sd_configs' "$tmp/prometheus-scrape.yml" && { echo "k8s-validate: FAIL: could not swap the SD block" >&2; exit 1; }
promtool check config "$tmp/prometheus-scrape.yml" >/dev/null
echo "k8s-validate: promtool check config: deploy/prometheus/prometheus.yml, deploy/k8s/monitoring/prometheus-scrape.yaml (static SD)" >&2
echo "k8s-validate: OK" >&2
