# Two commands set everything up: `make serve` and `make test`. Installing is driven by a
# stamp that depends on the project files, so a current .venv installs nothing and needs no network.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The checks of deploy/ and the Dockerfile (checkov, kubernetes-validate, hadolint, uv) live in a
# venv of their own: checkov pins many packages that must not meet the broker's.
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
TYPESCRIPT := 5.9.3

# `make bench` is the full measured run (about 20 minutes); `make bench BENCH_ARGS=--quick` a smoke run,
# `make bench BENCH_ARGS=--soak` the 5-minute memory run. See bench/README.md.
.PHONY: install tools serve test check-deploy deploy-render lock lint openapi bench clean distclean

install: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@echo "make: installing jobbroker, its SDK and the embedded PostgreSQL into $(VENV) (first run: a minute or two)"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded,otel]' -e 'clients/python[fastapi,otel]'
	touch $(STAMP)

tools: $(TOOLS_STAMP)

# uv first, then the rest through it (checkov's many dependencies install in seconds, not minutes);
# TypeScript's tsc, which checks the Node worker's declarations, where npm is installed.
$(TOOLS_STAMP): tools/requirements.txt Makefile
	@echo "make: installing the checks' tools (checkov, kubernetes-validate, hadolint, uv, tsc) into $(TOOLS)"
	test -x $(TOOLS)/bin/python || $(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "$$(grep '^uv==' tools/requirements.txt)"
	$(TOOLS)/bin/uv pip install --quiet --python $(TOOLS)/bin/python -r tools/requirements.txt
	if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --prefix $(TOOLS)/node typescript@$(TYPESCRIPT); fi
	touch $(TOOLS_STAMP)

serve: $(STAMP)
	$(BIN)/jobbroker serve

test: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy --strict clients/python/jobbroker_client
	$(BIN)/python -m pytest -q

# promtool (Debian's prometheus package), kubernetes-validate, checkov, hadolint and the rendered
# manifests; each check skips with its reason when its tool is missing. See deploy/README.md.
check-deploy: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest -q tests/deploy

# Render deploy/kubernetes/overlays/* into deploy/kubernetes/rendered/ (needs kubectl or kustomize)
# and the PrometheusRule from deploy/prometheus/rules.yaml.
deploy-render: $(STAMP)
	$(BIN)/python -m tools.deploy_render

# The Docker image's pinned dependencies, with hashes.
lock: $(TOOLS_STAMP)
	$(TOOLS)/bin/uv pip compile pyproject.toml --extra otel --generate-hashes --universal --python-version 3.11 --quiet -o requirements.lock

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

openapi: $(STAMP)
	$(BIN)/jobbroker openapi --output openapi/openapi.json

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

# Reset the local broker: the embedded PostgreSQL's data (every job) and test caches; keeps the venvs.
clean:
	rm -rf .jobbroker .pytest_cache .hypothesis

# Everything `make` made, the venvs included: the next `make serve` starts from scratch.
distclean: clean
	rm -rf $(VENV) $(TOOLS) .ruff_cache .mypy_cache
