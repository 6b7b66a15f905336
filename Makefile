# The two commands of README.md: `make serve` and `make test`. Both build the virtual
# environment they need on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: serve test bench translations

serve: $(STAMP)
	$(VENV)/bin/whistle serve

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)
