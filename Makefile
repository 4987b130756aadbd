# Everything a student, an instructor or CI needs, from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= $(shell nproc)

.PHONY: setup test demo lab build verify bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -n $(JOBS)

demo: $(STAMP)
	$(BIN)/course demo

# Student mode, as on Binder: postBuild's settings in a config folder of the course's own.
lab: $(STAMP)
	JUPYTER_CONFIG_DIR=$(CURDIR)/build/student-jupyter PATH=$(CURDIR)/$(BIN):$$PATH ./postBuild >/dev/null 2>&1
	JUPYTER_CONFIG_DIR=$(CURDIR)/build/student-jupyter $(BIN)/jupyter lab release/

build: $(STAMP)
	$(BIN)/course build

verify: $(STAMP)
	$(BIN)/course verify --jobs $(JOBS)

bench: $(STAMP)
	$(BIN)/course bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
