# The README's two commands are `make demo` and `make test`; each bootstraps what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
JARS_DIR ?= .cache/jars
UV_VERSION := 0.13.9
LOCK := requirements/lock.txt
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help demo test test-all check bench bench-peers venv jars java postgres browser nginx lock docs clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

demo: venv jars java ## Run every pipeline stage end to end on embedded defaults
	@echo "==> lakehouse demo"
	$(BIN)/lakehouse demo

test: venv jars java postgres browser ## Run the test suite (no slow cases)
	@echo "==> pytest (fast suite; 'make test-all' adds the slow cases)"
	$(BIN)/pytest

test-all: venv jars java postgres browser nginx ## Run every test, slow ones included
	$(BIN)/pytest -m ""

check: venv ## ruff (format + lint), mypy, import-linter layer contracts, generated docs
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/lakehouse docs --check

bench: venv jars java ## Run benchmarks/ and print ratios against peer tools
	$(BIN)/python -m benchmarks

bench-peers: venv ## Build .venv-medspacy, the NLP benchmark peer's own environment (pinned)
	$(BIN)/python -m benchmarks.bench_context --setup-peer

docs: venv ## Regenerate docs/error-codes.md, data-dictionary.md, settings.md
	$(BIN)/lakehouse docs

venv: $(VENV)/.installed ## Create .venv with the locked dependencies (no-op when current)

$(VENV)/.installed: $(LOCK) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found. Install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv) or run make PYTHON=/path/to/python3.11"; exit 69; }
	@echo "==> bootstrapping $(VENV) from $(LOCK)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

jars: $(JARS_DIR)/.fetched ## Fetch the Delta Lake and JDBC jars into the jar cache (once)

$(JARS_DIR)/.fetched: infra/jars/pom.xml
	@echo "==> fetching JVM jars listed in infra/jars/pom.xml into $(JARS_DIR)"
	@mkdir -p $(JARS_DIR)
	@if command -v mvn >/dev/null; then \
	  mvn -q -B -f infra/jars/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(abspath $(JARS_DIR)) -DexcludeTransitive=true ; \
	else \
	  echo "    (Maven not found: fetching the same artifacts from Maven Central directly)"; \
	  $(PYTHON) infra/jars/fetch.py infra/jars/pom.xml $(JARS_DIR) ; \
	fi
	@touch $@

java: ## Check that Java 17+ is installed (Spark needs it)
	@command -v java >/dev/null || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  echo "error LH-ENV-001: no Java runtime found. Spark needs Java 17: install OpenJDK 17"; \
	  echo "  (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME."; exit 69; }

# $(call apt_install,PACKAGE,WHY): install Debian's PACKAGE when run as root with apt-get,
# else say what to install and stop (exit 69). Used after a `||` that checks for it.
apt_install = { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "==> installing $(1) (Debian package) $(2)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	  else \
	    echo "error: $(1) not found; install it (apt-get install $(1))"; exit 69; \
	  fi; }

postgres: ## Make sure PostgreSQL server binaries exist (tests start throw-away servers)
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  $(call apt_install,postgresql,for the tests)

browser: ## Make sure Debian's chromium exists (the chat page's Playwright test drives it)
	@test -x /usr/bin/chromium || $(call apt_install,chromium,for the browser tests)

nginx: ## Make sure Debian's nginx exists (the two-replica proxy test runs it as this user)
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
	  $(call apt_install,nginx,for the reverse-proxy test)

lock: ## Re-resolve requirements/lock.txt from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra synth --extra nlp --extra dev --extra serve --extra ml --extra knowledge --extra agents --extra train --extra notebooks --python-version 3.11 -o $(LOCK)

clean: ## Remove local data and caches (keeps .venv and the jar cache)
	rm -rf var .pytest_cache .mypy_cache .ruff_cache spark-warehouse metastore_db derby.log
