# Set-up on a fresh machine (see README):  make demo   and   make test
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Every distribution in the repository: the core, each connector, each plugin.
DISTS := $(sort $(dir $(wildcard connectors/*/pyproject.toml plugins/*/pyproject.toml)))

.PHONY: install browser demo test bench clean

$(BIN)/segsync: pyproject.toml $(wildcard connectors/*/pyproject.toml plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]' $(addprefix -e ,$(DISTS))
	touch $@

install: $(BIN)/segsync

demo: install
	rm -rf demo-project
	$(BIN)/segsync demo --dir demo-project

# The report's browser test (plugins/report) drives Debian's chromium through Playwright: as
# root on Debian it is installed here when missing; elsewhere that test fails saying so.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "note: no $(CHROMIUM); the report's browser test needs Debian's chromium (apt-get install -y chromium)" >&2; \
		fi; \
	fi

test: install browser
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) demo-project
