# moa developer loop. Everything a fresh machine needs is installed from here;
# downloads and builds are cached under ~/.cache/moa so reruns are fast.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := operator,datagen,trainer,serving,dev
STAMP := $(VENV)/.installed
PLUGIN_STAMP := $(VENV)/.plugins-installed
PYTEST_ARGS ?=

.PHONY: install node-deps lint typecheck contracts test test-unit test-cluster test-e2e test-pods demo demo-cluster images clean crds bench

install: $(STAMP) $(PLUGIN_STAMP)

# Re-runs only when the dependency inputs change; `pip install -e` keeps the source live.
# Language plugins shipped as their own distributions (plugins/*) are installed the way a third
# party's would be: a plain `pip install` of the folder, found through the entry point alone.
PLUGINS := plugins/moa-java

$(STAMP): pyproject.toml constraints.txt
	@# bubblewrap gives the sandbox a read-only host and no network; without it moa falls back
	@# to `unshare --net` and says so. Installed from Debian when we can (root, apt).
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) || \
	  echo "warning: bubblewrap not installed; sandboxed runs fall back to unshare --net"; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

# A plain install copies the plugin, so its sources are prerequisites: an edit reinstalls it.
$(PLUGIN_STAMP): $(STAMP) $(foreach p,$(PLUGINS),$(p)/pyproject.toml $(wildcard $(p)/*/*.py $(p)/samples/*))
	$(BIN)/python -m pip install -q -c constraints.txt $(addprefix ./,$(PLUGINS))
	@touch $@

# The real node (`moa dev cluster up --real-node`, tests marked real_node) runs containers with
# Debian's runc and bridge CNI plugins and programs iptables/ipset; containerd, kubelet,
# kube-proxy and kube-router themselves are built from Go modules on first use. Installed from
# Debian when we can (root, apt); otherwise the real-node tests skip and say what is missing.
NODE_DEBS := runc containernetworking-plugins iptables ipset conntrack
node-deps:
	@missing=""; for c in runc iptables ipset conntrack; do command -v $$c >/dev/null || missing=1; done; \
	  test -x /usr/lib/cni/bridge || missing=1; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NODE_DEBS) >/dev/null; \
	    else echo "warning: $(NODE_DEBS) not installed; real-node tests will skip"; fi; \
	  fi

lint: install
	$(BIN)/ruff check moa tests bench plugins
	$(BIN)/ruff format --check moa tests bench plugins

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

test: install node-deps lint typecheck contracts
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-cluster: install node-deps
	$(BIN)/python -m pytest tests/cluster $(PYTEST_ARGS)

test-e2e: install
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

# The demo spec applied with kubectl, every stage in a real pod from moa's images, compared with
# `moa run` of the same spec (~45 min on 2 cores; builds the images first when they changed); and
# each other language's data stages in pods from its sandbox image (those built: `make images`);
# `moa serve` from the serving image behind its Service, answering the openai client.
test-pods: install node-deps
	MOA_TEST_PODS=1 $(BIN)/python -m pytest tests/cluster/test_demo_in_pods.py tests/cluster/test_sandbox_images_in_pods.py tests/cluster/test_serving_in_pod.py $(PYTEST_ARGS)

# The main job: a Python adapter end to end on this machine with a tiny random model.
DEMO_DIR ?= runs/demo
DEMO_BASE := $(DEMO_DIR)/checkpoints/coding_tui/final_merged
demo: install
	@# A tiny GPT-OSS-shaped model, pretrained for a few minutes on the demo sources' code and on
	@# Harmony agent episodes, so that SFT starts from a model that knows the format.
	@test -f $(DEMO_BASE)/config.json || $(BIN)/moa dev tiny-model --output $(DEMO_BASE) --pretrain --spec examples/demo-python.yaml
	$(BIN)/moa run examples/demo-python.yaml --workdir $(DEMO_DIR)
	$(BIN)/moa registry list --workdir $(DEMO_DIR)
	@echo "reports: $(DEMO_DIR)/reports/python   adapter: $(DEMO_DIR)/checkpoints/adapters/python_coding"

# The main job on Kubernetes: local control plane + real node, images imported, the operator
# on this host, kubectl apply of the demo spec, a live `kubectl get at -w`, the demo summary.
demo-cluster: install
	examples/demo-cluster.sh

# moa's container images (images/*/Dockerfile), built without a Docker engine: buildah (overlay,
# or vfs where the kernel mounts no overlay; chroot) from a Debian base assembled with
# debootstrap. Cached by content hash under ~/.cache/moa/images; OCI archives for
# `ctr -n k8s.io images import` land in ~/.cache/moa/images/oci.
IMAGES ?=
images: install
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && apt-get install -y -qq buildah debootstrap >/dev/null; }
	$(BIN)/moa dev images build $(foreach i,$(IMAGES),--only $(i))

crds: install
	$(BIN)/moa manifests crds --output manifests/crds

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
