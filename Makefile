# Set-up on a fresh machine (see README):  make demo   and   make test
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Every distribution in the repository: the core, each connector, each plugin.
DISTS := $(sort $(dir $(wildcard connectors/*/pyproject.toml plugins/*/pyproject.toml)))

.PHONY: install demo test bench clean

$(BIN)/segsync: pyproject.toml $(wildcard connectors/*/pyproject.toml plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]' $(addprefix -e ,$(DISTS))
	touch $@

install: $(BIN)/segsync

demo: install
	rm -rf demo-project
	$(BIN)/segsync demo --dir demo-project

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) demo-project
