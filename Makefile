# The two commands: `make dev` (install, then run the whole local system) and `make test` (install, then
# run every check). Everything is installed into the project: .venv (Python), .tools (uv),
# .venv-checkov (checkov has its own dependency tree), tests/emulators/node_modules (Firestore emulator),
# tests/infra/provider-schema/node_modules (the google provider schema for the offline Terraform checks).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
CHECKOV_VERSION := 3.3.30
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
EMULATOR := tests/emulators/node_modules/@firestore-emulator/server/package.json
PROVIDER_SCHEMA := tests/infra/provider-schema/node_modules/@cdktf/provider-google/package.json
CHECKOV := .venv-checkov/bin/checkov
PYTEST_ARGS ?=

.PHONY: install dev test check lint typecheck imports unit requirements clean chromium

install: $(VENV)/.installed $(EMULATOR) $(PROVIDER_SCHEMA) $(CHECKOV) chromium

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

$(EMULATOR): tests/emulators/package.json tests/emulators/package-lock.json
	cd tests/emulators && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The google provider's schema as TypeScript bindings (about 300 MB unpacked, ~10 s), read offline by
# tests/infra/provider_schema.py; its .npmrc skips the cdktf peer dependencies, which only code generation needs.
$(PROVIDER_SCHEMA): tests/infra/provider-schema/package.json tests/infra/provider-schema/package-lock.json
	cd tests/infra/provider-schema && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHECKOV): .ci/checkov-requirements.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check -r .ci/checkov-requirements.txt
	touch $@

# Headless Chromium for the report page's browser test (tests/e2e/test_report_page.py): the Debian package,
# installed only when missing (CI runs as root on a fresh clone with apt access; elsewhere sudo is used).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; \
	fi

dev: $(VENV)/.installed  # the local stack needs neither the Firestore emulator nor checkov
	$(BIN)/spotgate dev --config examples/fleet.yaml

test: install check
	$(BIN)/pytest $(PYTEST_ARGS)

check: lint typecheck imports

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

imports:
	$(BIN)/lint-imports

# What Cloud Functions (functions/requirements.txt) and the gateway image (run_service/requirements.txt,
# hash-pinned) install; both are generated from uv.lock, and a test fails when either drifts from it.
requirements: $(VENV)/.installed
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes --quiet -o functions/requirements.txt
	$(UV) export --format requirements.txt --no-dev --no-emit-project --frozen --quiet -o run_service/requirements.txt

clean:
	rm -rf .venv .tools .venv-checkov tests/emulators/node_modules tests/infra/provider-schema/node_modules .spotgate .mypy_cache .ruff_cache .pytest_cache
