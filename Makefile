# agkit: the entry points a person types. `make` alone lists them.
PYTHON ?= python3
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install build test lint typecheck pytest bench man man-check demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Installing is a prerequisite of everything, redone only when the package definition changes.
STAMP := .make/installed
$(STAMP): pyproject.toml setup.py $(wildcard native/*.c native/*.h native/*.py)
	$(PYTHON) -m pip install -q "setuptools>=77" cffi
	$(PYTHON) -m pip install -q -e ".[dev]"
	$(PYTHON) setup.py -q build_ext --inplace
	@mkdir -p .make && touch $@

install: $(STAMP) ## install agkit and its dev tools (editable), compiling the C ring buffer

build: ## recompile the cffi ring buffer in place (after editing native/)
	$(PYTHON) setup.py -q build_ext --inplace

test: $(STAMP) lint typecheck pytest ## ruff, mypy --strict, then the whole pytest suite

lint: $(STAMP) ## ruff
	$(PYTHON) -m ruff check agkit tests bench native examples

typecheck: $(STAMP) ## mypy, strict on agkit/
	$(PYTHON) -m mypy

pytest: $(STAMP)
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP) ## every benchmark, one table: figure, value, baseline, ratio
	$(PYTHON) bench/run.py

man: $(STAMP) ## regenerate man/ from the command definitions
	$(PYTHON) -m agkit.manpages man

demo: $(STAMP) ## the main job: a paper-trading bot on the simulated market, no network
	$(PYTHON) examples/demo.py

clean:
	rm -rf .make build *.egg-info agkit/_ring*.so agkit/_ring.c .pytest_cache .mypy_cache .ruff_cache
