# Everything a student, an instructor or CI needs, from a fresh clone.
# PYTHON: the interpreter the environment is built from (any Python 3.11); VENV: where it goes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= $(shell nproc)

.PHONY: setup check-python test demo lab build verify bench clean

# Stop before installing anything when the interpreter cannot run the pinned environment
# (expanded only when the set-up runs, so other targets never start a Python for it).
PYTHON_VERSION = $(shell $(PYTHON) -c 'import sys, venv, ensurepip; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)
check-python:
	$(if $(filter 3.11.%,$(PYTHON_VERSION)),,$(error the course needs Python 3.11 (3.11.0 or newer 3.11) with venv, but $(PYTHON) is $(or $(PYTHON_VERSION),not such a Python): install one (Debian/Ubuntu: sudo apt-get install python3.11 python3.11-venv) and run: make setup PYTHON=python3.11))

$(STAMP): requirements.txt pyproject.toml | check-python
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
