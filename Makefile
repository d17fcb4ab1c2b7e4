# agkit: the entry points a person types. `make` alone lists them.
PYTHON ?= python3
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install build test lint typecheck pytest bench man man-check demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install agkit and its dev tools (editable), compiling the C ring buffer
	$(PYTHON) -m pip install -q -e ".[dev]"
	$(MAKE) build

build: ## compile the cffi ring buffer in place (after editing native/)
	$(PYTHON) setup.py -q build_ext --inplace

test: lint typecheck pytest ## ruff, mypy --strict, then the whole pytest suite

lint: ## ruff
	$(PYTHON) -m ruff check agkit tests bench native examples

typecheck: ## mypy, strict on agkit/
	$(PYTHON) -m mypy

pytest: build
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

bench: build ## every benchmark, one table: figure, value, baseline, ratio
	$(PYTHON) bench/run.py

man: ## regenerate man/ from the command definitions
	$(PYTHON) -m agkit.manpages man

demo: build ## the main job: a paper-trading bot on the simulated market, no network
	$(PYTHON) examples/demo.py

clean:
	rm -rf build *.egg-info agkit/_ring*.so agkit/_ring.c .pytest_cache .mypy_cache .ruff_cache
