# The two commands a newcomer needs:
#   make up     converge a local all-in-one host (platform-local) and print how to reach it
#   make test   lint, unit tests, and `molecule test` of every scenario on Debian 13 and 12
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

SUPPORTED_DISTROS := debian13 debian12
# Distro of the local host (make up DISTRO=debian12).
DISTRO ?= debian13
# Distros and scenarios `make test` runs.
DISTROS ?= $(SUPPORTED_DISTROS)
SCENARIOS ?= $(sort $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# The six-host `cluster` scenario runs on these distros only (CI's time budget).
CLUSTER_DISTROS ?= debian13
# MOLECULE_LANES=2 (scripts/molecule-lanes.sh): SOLO_SCENARIOS first, one at a time, then
# the other scenarios in two lanes side by side, one per distro. A one-host scenario keeps
# about one core busy, so two share 2 cores; the six-host cluster beside anything doubled
# both (a one-host scenario: 503 s beside it, 257 s alone). MOLECULE_LANES=1: all in a row.
MOLECULE_LANES ?= 2
SOLO_SCENARIOS ?= cluster

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
export PY_COLORS ?= 0
export ANSIBLE_FORCE_COLOR ?= 0

APP_VENV ?= app/.venv
APP_BIN := $(abspath $(APP_VENV))/bin

.PHONY: help up down test lint unit rules app-test molecule venv app-venv docker images check-distro lock bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

check-distro:
	@for d in $(DISTRO) $(DISTROS); do \
	  case " $(SUPPORTED_DISTROS) " in *" $$d "*) ;; \
	  *) echo "error: unknown distro '$$d'; supported: $(SUPPORTED_DISTROS)" >&2; exit 2;; esac; \
	done

venv: $(VENV)/.installed ## Create the controller toolchain venv (.venv)

$(VENV)/.installed: requirements.txt scripts/bootstrap.sh
	scripts/bootstrap.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

app-venv: $(APP_VENV)/.installed ## Create the app's venv from the hash-locked requirements

$(APP_VENV)/.installed: app/requirements.lock app/pyproject.toml
	$(PYTHON) -m venv $(APP_VENV)
	$(APP_BIN)/pip install --quiet --upgrade pip
	$(APP_BIN)/pip install --quiet --require-hashes -r app/requirements.lock
	$(APP_BIN)/pip install --quiet --no-deps -e app
	$(APP_BIN)/pip install --quiet pytest
	touch $@

lock: ## Regenerate app/requirements.lock (hashes) from app/pyproject.toml
	rm -rf .cache/lock-venv && $(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install --quiet pip-tools
	cd app && ../.cache/lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --extra sentry --output-file requirements.lock pyproject.toml
	cat app/requirements-markers.lock >> app/requirements.lock

docker: ## Make sure a Docker engine answers (installs docker.io and starts dockerd if needed)
	@scripts/ensure-docker.sh

images: check-distro venv docker ## Build (or reuse) the test-host images
	@for d in $(DISTROS); do scripts/build-test-image.sh $$d; done

up: check-distro venv docker ## Converge the local all-in-one host platform-local
	ansible-playbook playbooks/local.yml -e local_state=present -e local_distro=$(DISTRO)
	ansible-playbook -i inventories/local site.yml
	@scripts/local-summary.sh platform-local

down: venv docker ## Remove the local host
	ansible-playbook playbooks/local.yml -e local_state=absent

lint: venv ## yamllint, ansible-lint (production profile), ruff
	yamllint --strict .
	ansible-lint
	ruff check .
	ruff format --check .

unit: venv ## Unit tests of the roles' plugins
	pytest -q -p no:cacheprovider tests_unit

rules: ## promtool check and unit tests of the alert rules (monitoring/)
	scripts/promtool.sh check rules monitoring/rules/*.yml
	scripts/promtool.sh test rules monitoring/tests/*.yml

app-test: app-venv ## The app's tests, against real PostgreSQL, PgBouncer and Redis
	cd app && $(APP_BIN)/pytest -q

bench: app-venv ## Benchmarks (print figures; not tests)
	$(APP_BIN)/python bench/app_health.py

molecule: check-distro venv docker images ## molecule test, every scenario on every distro, in MOLECULE_LANES lanes
	@mkdir -p .cache; DISTROS="$(DISTROS)" SCENARIOS="$(SCENARIOS)" CLUSTER_DISTROS="$(CLUSTER_DISTROS)" \
	  MOLECULE_LANES="$(MOLECULE_LANES)" SOLO_SCENARIOS="$(SOLO_SCENARIOS)" scripts/molecule-lanes.sh

# Printed at the end of `make test`, failed or not: each stage's time, each Molecule run's actions.
STAGE_TIMES = echo "==> stage times:"; sed 's/^/    /' .cache/test-times

test: venv docker ## Everything CI runs (lint, unit, rules, app-test, molecule), with each stage's time
	@mkdir -p .cache && : > .cache/test-times
	@# The test images build (debootstrap: mostly waiting on the mirror) beside the first stages.
	@start=$$(date +%s); \
	( $(MAKE) --no-print-directory images > .cache/images.log 2>&1; echo $$? > .cache/images.status ) & \
	for step in lint unit rules app-test; do \
	  s=$$(date +%s); \
	  $(MAKE) --no-print-directory $$step || { echo "==> make $$step FAILED after $$(( $$(date +%s) - s ))s"; wait; $(STAGE_TIMES); exit 1; }; \
	  echo "$$step $$(( $$(date +%s) - s ))s" >> .cache/test-times; \
	done; \
	wait; cat .cache/images.log; \
	[ "$$(cat .cache/images.status)" = 0 ] || { echo "==> make images FAILED"; $(STAGE_TIMES); exit 1; }; \
	echo "images (beside the stages above) done at $$(( $$(date +%s) - start ))s" >> .cache/test-times
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory molecule || { echo "==> make molecule FAILED after $$(( $$(date +%s) - start ))s"; $(STAGE_TIMES); exit 1; }; \
	echo "molecule $$(( $$(date +%s) - start ))s" >> .cache/test-times
	@$(STAGE_TIMES)

clean: ## Remove the venv and caches (not the test images)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
