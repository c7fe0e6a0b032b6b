# Two commands for a fresh clone (Python 3.11+ needed):
#   make lab    install into .venv and open the workbook in JupyterLab
#   make test   install into .venv and run every test (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: lab test install browser lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(BIN)/.installed

lab: install
	$(BIN)/kata lab

test: install
	$(BIN)/python -m pytest

browser: install  # Debian's chromium for the JupyterLab end-to-end test (needs root or sudo)
	bash .ci/setup-browser $(VENV)

lint: install
	$(BIN)/ruff check harness katas solutions tests

clean:
	rm -rf $(VENV) build *.egg-info
