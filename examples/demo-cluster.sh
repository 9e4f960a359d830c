#!/usr/bin/env bash
# `make demo-cluster`: the main job on Kubernetes, on this machine. The local control plane with
# a real node (kubelet + containerd), moa's images built and imported, the operator running on
# this host, `kubectl apply` of the demo spec, a live `kubectl get at -w`, then the summary
# `make demo` prints. Every stage runs in a real pod from moa's images.
#
# The demo spec is examples/demo-python.yaml (DEMO_SPEC: another) with what a one-node cluster
# needs on top (printed before it is applied): gpus: 0 (training on the node's CPU), small
# CPU/memory requests, the artifact claim bound to the node's local volume, and the host's CA
# bundle for the fetch pod. Its model is `make demo`'s tiny pretrained checkpoint, written onto
# that volume.
set -euo pipefail
cd "$(dirname "$0")/.."
MOA=${MOA:-.venv/bin/moa}
PY=${PY:-.venv/bin/python}
CLUSTER=${MOA_CLUSTER:-moa}
NS=moa-training
NAME=python-demo
SPEC=${DEMO_SPEC:-examples/demo-python.yaml}
CLAIM=$NAME-artifacts
VOLUME=${MOA_CACHE:-$HOME/.cache/moa}/cluster/$CLUSTER/node/volumes/artifacts
started=$(date +%s)
phase() { echo "== $* ($(($(date +%s) - started)) s)"; }

phase "images (cached by content hash)"
# What this spec's pods run: the operator image (data gate), its language's sandbox, the trainer.
LANGUAGE=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["spec"]["language"])' "$SPEC")
IMAGES=(moa-operator "moa-sandbox-$LANGUAGE" moa-trainer)
"$MOA" dev images build "${IMAGES[@]/#/--only=}"
mapfile -t archives < <("$PY" -c 'import json, os, sys
for row in json.load(open(os.path.expanduser(sys.argv[1]))):
    if row["name"] in sys.argv[2:]: print(row["archive"])' \
  "${MOA_CACHE:-$HOME/.cache/moa}/images/images.json" "${IMAGES[@]}")

phase "cluster up with the real node, images imported"
"$MOA" dev cluster --name "$CLUSTER" up --real-node "${archives[@]/#/--image=}"
eval "$("$MOA" dev cluster --name "$CLUSTER" env)"

phase "the tiny base model on the artifact volume"
# Pretrained as `make demo`'s (a few minutes; reused from runs/demo when that ran first): the demo
# spec's gates are set to what it reaches.
base=$VOLUME/checkpoints/coding_tui/final_merged
local_base=runs/demo/checkpoints/coding_tui/final_merged
if [ ! -f "$base/config.json" ] && [ -f "$local_base/config.json" ]; then
  mkdir -p "$base" && cp -r "$local_base/." "$base/"
fi
test -f "$base/config.json" || "$MOA" dev tiny-model --output "$base" --pretrain --spec "$SPEC"
chown -R 65532:65532 "$VOLUME"  # the stage pods' uid (images/*/Dockerfile USER)

phase "CRDs, the training namespace, the operator"
# The CRDs and RBAC of the install YAML; the operator itself runs on this host (`moa operator
# run`, as during development): this control plane serves on 127.0.0.1 only, which a pod cannot
# reach. On a real cluster the install YAML's Deployment runs the same operator from its image.
# Server-side apply: `up` already created the CRDs, which client-side apply would warn about.
"$MOA" manifests install | "$PY" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] != "Deployment"]
print(yaml.safe_dump_all(docs, sort_keys=False))' | kubectl apply --server-side --force-conflicts -f -
kubectl apply -f manifests/sandbox/sandbox.yaml
mkdir -p runs
"$MOA" operator run --namespace "$NS" --liveness-port 0 --metrics-port 0 --plain-logs \
  > runs/demo-cluster-operator.log 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null || true' EXIT
echo "operator: pid $operator, log runs/demo-cluster-operator.log"

phase "kubectl apply the demo spec"
# The fetch pod trusts what this host trusts (a TLS-inspecting egress proxy, say): its CA bundle
# goes into a ConfigMap named by spec.network.fetch.caBundle.
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
kubectl -n "$NS" create configmap host-ca --from-file=ca.crt="$HOST_CA" --dry-run=client -o yaml | kubectl apply -f -
spec=$("$PY" - "$NS" "$NAME" "$CLAIM" "$SPEC" <<'EOF'
import sys, yaml
ns, name, claim, spec_file = sys.argv[1:]
doc = yaml.safe_load(open(spec_file))
doc["metadata"] = {"name": name, "namespace": ns}
spec = doc["spec"]
spec["storage"] = {**spec.get("storage", {}), "claimName": claim}
spec["network"] = {"fetch": {"caBundle": {"name": "host-ca"}}}
# The node has 2 CPUs: a training pod, or two sandbox pods side by side, fit on it.
spec["resources"] = {**spec.get("resources", {}), "gpus": 0, "cpu": "1500m", "memory": "6Gi",
                     "sandbox": {"cpu": "750m", "memory": "3Gi"}}
claim_doc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": claim, "namespace": ns},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "moa-local",
                      "resources": {"requests": {"storage": "20Gi"}}}}
print(yaml.safe_dump_all([claim_doc, doc], sort_keys=False))
EOF
)
echo "$spec"
echo "$spec" | kubectl apply -f -

phase "live: kubectl get at -w (until Ready)"
kubectl -n "$NS" get at -w &
watcher=$!
trap 'kill $watcher $operator 2>/dev/null || true' EXIT
kubectl -n "$NS" wait --for=condition=Ready "at/$NAME" --timeout="${DEMO_TIMEOUT:-3600s}"
kill $watcher 2>/dev/null || true

phase "summary"
kubectl -n "$NS" get at,adapters,pods
# The before/after table the eval pod wrote (what `make demo` prints at its end).
cat "$VOLUME/reports/$LANGUAGE/before_after.md"
artifact=$(kubectl -n "$NS" get adapters -o jsonpath='{.items[0].spec.artifact}')
echo "reports: $VOLUME/reports/$LANGUAGE   adapter (immutable, digest-named): $VOLUME/$artifact"
phase "done"
