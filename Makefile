# Corral: `make run` starts one node on 127.0.0.1:2379; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= ./data

.PHONY: run cluster test bench bench-cluster bench-watch bench-client deps install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# System packages the tests and benchmarks drive: a real etcd (differential tests) and wrk (benchmarks).
deps:
	bash scripts/install-deps

run: install
	$(BIN)/corral --name default --data-dir $(DATA_DIR) \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

cluster: install
	bash scripts/cluster

test: install deps
	$(BIN)/python -m pytest -q

bench: install deps
	$(BIN)/python -m benchmarks.run

bench-cluster: install deps
	$(BIN)/python -m benchmarks.run --cluster 3

bench-watch: install deps
	$(BIN)/python -m benchmarks.watch_fanout

bench-client: install deps
	$(BIN)/python -m benchmarks.client_put

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
