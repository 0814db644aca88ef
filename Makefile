# Two commands: `make run` and `make test`. Both create .venv and install the project first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run stop lint test test-unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install ## start everything in the foreground; Ctrl-C stops it all
	$(VENV)/bin/marketing-agents run

stop: ## stop `make run` from another shell
	@if [ -x $(VENV)/bin/marketing-agents ]; then $(VENV)/bin/marketing-agents stop; else echo "not installed: nothing to stop"; fi

lint: install ## ruff over the code and tests; mypy over the packages held to it (pyproject.toml)
	$(VENV)/bin/ruff check marketing_agents tests benchmarks scripts
	$(VENV)/bin/mypy

test: lint ## lint, then the whole suite: unit, integration (real stores) and end to end (real Ray cluster)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: install
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

bench: install ## every benchmark in benchmarks/ (each under 10 minutes); results in benchmarks/results/
	cd benchmarks && for script in bench_optimizer bench_handoff bench_memory bench_batch bench_graph bench_leads bench_console; do \
		echo "== $$script"; ../$(VENV)/bin/python $$script.py || exit 1; done; \
		../$(VENV)/bin/python report.py

.PHONY: screenshots
screenshots: install ## PNGs of the operator console into docs/console/, from the system `make run` serves (another shell)
	MAS_ADMIN_API_KEY="$${MAS_ADMIN_API_KEY:-$$(cat $${MAS_DATA_DIR:-.mas}/admin-api-key)}" \
		$(VENV)/bin/python scripts/screenshots.py --url http://127.0.0.1:$${MAS_HTTP_PORT:-8080} --out docs/console

clean:
	rm -rf $(VENV) .pytest_cache
