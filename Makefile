# The two commands of README.md: `make serve` and `make test`. Both build the virtual
# environment they need on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: serve test bench translations axe

# The browser journeys (tests/test_browser_journeys.py) drive Debian's Chromium; Playwright
# never downloads a browser. axe-core, the accessibility checker they inject into each page,
# comes from the npm registry at this version, into .axe/ (git-ignored).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
AXE_VERSION := 4.14.1
AXE := .axe/node_modules/axe-core/axe.min.js

serve: $(STAMP)
	$(VENV)/bin/whistle serve

test: $(STAMP) $(AXE)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

axe: $(AXE)

$(AXE): Makefile
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix .axe axe-core@$(AXE_VERSION)
	touch $(AXE)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Re-extract the user-facing strings, merge them into the Thai and English catalogs, and
# compile them. New or changed strings come out untranslated or fuzzy, and tests/test_i18n.py
# fails until they are translated in whistle/translations/th/LC_MESSAGES/messages.po.
BABEL_EXTRACT := -F babel.cfg -k _l -k lazy_gettext --project=whistle --copyright-holder="whistle contributors"
translations: $(STAMP)
	$(VENV)/bin/pybabel extract $(BABEL_EXTRACT) -o whistle/translations/messages.pot .
	$(VENV)/bin/pybabel update -i whistle/translations/messages.pot -d whistle/translations
	$(VENV)/bin/pybabel compile -d whistle/translations --statistics

# The benchmarks of docs/benchmarks.md; each prints its figures and its ratio against
# a reference measured in the same run. All run; the target fails if any missed.
bench: $(STAMP)
	@status=0; for b in submit file_encrypt upload_memory clean rewrap; do \
		$(VENV)/bin/python bench/$$b.py || status=1; done; exit $$status

# The load run of docs/benchmarks.md: gunicorn with deploy/gunicorn.conf.py against the local
# PostgreSQL and Redis, the real Argon2id cost, two phases of 60 s (the second under a flood
# of wrong codes); about 3 minutes. Fails if throughput is under 0.8x the bound measured in
# the same run or an unintended answer came back. E.g. LOAD_ARGS="--seconds 30".
# Mutation testing of the security-critical modules (tools/mutation.py, docs/security.md):
# fails if a module's score is under its target. Not in CI: see docs/security.md for its time.
# E.g. MUTATION_ARGS="whistle/visits.py --list-survivors".
.PHONY: mutation
mutation: $(STAMP)
	$(VENV)/bin/python tools/mutation.py --jobs 2 --list-survivors $(MUTATION_ARGS)

.PHONY: load
load: $(STAMP)
	$(VENV)/bin/python bench/load.py $(LOAD_ARGS)
