# Two entry points for a fresh machine (see README, Quick start):
#   make pipeline   install, start the local stack, run the main job end to end
#   make test       install, lint, run every test against real services
# Both create the virtualenv .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install pipeline test lint unit stack-down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

pipeline: install
	$(BIN)/booking-events pipeline

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest tests/unit

stack-down: install
	$(BIN)/booking-events stack down

clean: stack-down
	rm -rf .state
