# Everything runs from a local virtualenv that these targets create from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test examples bench check-config clean

$(BIN)/connector: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/connector

install: $(BIN)/connector

demo: install
	$(BIN)/connector demo

examples: install
	$(BIN)/connector examples

test: install
	$(BIN)/python -m pytest -q

check-config: install
	$(BIN)/connector check-config config/standard-support.yaml
	$(BIN)/connector check-config config/standard-support.zh-CN.yaml

bench: install
	$(BIN)/python bench/rules_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis data
