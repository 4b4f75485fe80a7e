#!/usr/bin/env bash
# Offline checks of the deployment files (CI runs this after the release build):
# - the Kubernetes manifests against the Kubernetes API schemas, strictly (unknown fields are
#   errors), with kubernetes-validate (PyPI);
# - the config.yaml inside the ConfigMap and deploy/compose/config.yaml with director's own
#   loader (`--check-config`), as the pods and containers would load them;
# - deploy/compose.yaml parses as YAML and names the services the README describes.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${DIRECTOR_BIN:-target/release/director}"

command -v kubernetes-validate >/dev/null || pip install --quiet kubernetes-validate
command -v kubernetes-validate >/dev/null || pyenv rehash
kubernetes-validate --strict --quiet deploy/kubernetes/*.yaml
echo "kubernetes manifests: valid"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import sys, yaml
out = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open("deploy/kubernetes/configmap.yaml")) if d]
(cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
open(f"{out}/k8s-config.yaml", "w").write(cm["data"]["config.yaml"])
compose = yaml.safe_load(open("deploy/compose.yaml"))
services = set(compose["services"])
want = {"director-a", "director-b", "director-c", "etcd", "app1", "app2"}
assert want <= services, f"compose services: {sorted(services)}"
PY
export DIRECTOR_ADMIN_LISTEN=0.0.0.0:8081 DIRECTOR_ADMIN_TOKEN=check-config-token-0123456789
"$bin" --check-config --config "$dir/k8s-config.yaml"
"$bin" --check-config --config deploy/compose/config.yaml
echo "deployment configs: valid"
