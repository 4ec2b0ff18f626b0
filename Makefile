# Set-up and everyday commands. `make demo` and `make test` create the virtualenv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/vidaffect: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	touch $@

install: $(BIN)/vidaffect

demo: install
	$(BIN)/vidaffect demo

test: install
	$(BIN)/pytest

clean:
	rm -rf out .pytest_cache
