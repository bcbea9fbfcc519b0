# attnserve: the two quick-start commands are `make serve` and `make test`.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
DEMO_REPO ?= model_repository
LITSERVE_VERSION ?= 0.2.19
MOSEC_VERSION ?= 0.9.8
TORCHSERVE_VERSION ?= 0.12.0

.PHONY: install tools test reliability lint format proto serve demo peers bench loadtest docker-bases k8s-validate clean

# The stamp depends on pyproject.toml, so `make install` is a no-op until the dependencies change.
$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q torch==$(TORCH_VERSION)
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# promtool/prometheus (Debian package, unpacked), tsc + @grafana/schema (npm): for tests/docker
tools: install
	bash docker/ci/install-tools.sh $(VENV)

test: tools
	$(PYTHON) -m pytest

# overload, faults under load, hostile input, soak (~5 min on 2 cores; also part of `make test`)
reliability: tools
	$(PYTHON) -m pytest tests/reliability -q -rxX

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The gRPC modules, generated from service/protocols/grpc/inference.proto and checked in (the
# image and users need no protoc); tests/service/protocols/grpc checks they are up to date.
GRPC_PROTO := service/protocols/grpc/inference.proto

proto: install
	$(PYTHON) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. $(GRPC_PROTO)

# Exported from the shipped weights (seconds, no training; `attnserve demo build --train`
# retrains them). Rebuilt from scratch only when the model code or the weights change, so
# versions never mix.
MODEL_SOURCES := $(shell find models -name '*.py')
DEMO_WEIGHTS := $(wildcard models/demo/weights/*)

$(DEMO_REPO)/.built: $(VENV)/.installed $(MODEL_SOURCES) $(DEMO_WEIGHTS)
	rm -rf $(DEMO_REPO)/shapes-classifier $(DEMO_REPO)/shapes-segmenter
	$(VENV)/bin/attnserve demo build --repo $(DEMO_REPO)
	touch $@

demo: $(DEMO_REPO)/.built

# Serves the demo models on http://127.0.0.1:8000 (ATTNSERVE_* variables apply).
serve: demo
	$(VENV)/bin/attnserve serve --repo $(DEMO_REPO)

# The benchmark's peer servers, each in a venv of its own (.venv-litserve, .venv-mosec,
# .venv-torchserve): no peer's requirements move the versions attnserve runs with, or another
# peer's. TorchServe also needs a JDK (Debian: openjdk-17-jre-headless) and imports yaml
# without declaring it.
PEER_PACKAGES_litserve := litserve==$(LITSERVE_VERSION)
PEER_PACKAGES_mosec := mosec==$(MOSEC_VERSION)
PEER_PACKAGES_torchserve := torchserve==$(TORCHSERVE_VERSION) torch-model-archiver==$(TORCHSERVE_VERSION) pyyaml
PEERS := litserve mosec torchserve

.venv-%/.installed: pyproject.toml
	test -x .venv-$*/bin/python || python3 -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --upgrade pip
	.venv-$*/bin/python -m pip install -q torch==$(TORCH_VERSION)
	.venv-$*/bin/python -m pip install -q -e . $(PEER_PACKAGES_$*)
	touch $@

peers: $(foreach peer,$(PEERS),.venv-$(peer)/.installed)
	@command -v java >/dev/null || echo "make peers: no java: TorchServe needs a JDK (apt-get install openjdk-17-jre-headless)"

# The benchmark (issues 5 and 12: the service, the baseline and the three peers); tables to
# stdout and bench/results/.
bench: demo peers
	$(PYTHON) -m bench --repo $(DEMO_REPO)

# Against a running `make serve` (another shell); HOST=... to aim elsewhere. Web UI on :8089.
loadtest: install
	$(VENV)/bin/locust -f docker/locust/locustfile.py --host $${HOST:-http://127.0.0.1:8000}

# Base images built from Debian packages, for a machine that reaches no container registry
# (needs root and a Docker engine); their compose substitutions go to docker/local/local.env:
# `docker compose --env-file docker/local/local.env up -d --build` (README "Run with Docker")
docker-bases:
	bash docker/local/build-bases.sh > docker/local/local.env

k8s-validate: install
	bash deploy/k8s/validate.sh

clean:
	rm -rf $(VENV) $(foreach peer,$(PEERS),.venv-$(peer)) $(DEMO_REPO) .pytest_cache .ruff_cache
