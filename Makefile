# Two commands set everything up: `make serve` and `make test`. Installing is driven by a
# stamp that depends on the project files, so a current .venv installs nothing and needs no network.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `make bench` is the full measured run (about 20 minutes); `make bench BENCH_ARGS=--quick` a smoke run,
# `make bench BENCH_ARGS=--soak` the 5-minute memory run. See bench/README.md.
.PHONY: install serve test lint openapi bench clean

install: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e clients/python
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/jobbroker serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

openapi: $(STAMP)
	$(BIN)/jobbroker openapi --output openapi/openapi.json

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .jobbroker .pytest_cache
