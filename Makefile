# Two commands do all set-up on a fresh machine:
#   make run   – install, fetch Fashion-MNIST, run the demonstration sweep and its analysis
#                (each run prints its JSON's path; the last line is the path of report.html)
#   make test  – install (with the Ray launcher and Optuna sweeper extras), fetch Fashion-MNIST (and chromium for the
#                report's browser test), run the tests
# Repeating either skips what is already done.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
TSTAMP  := $(VENV)/.installed-test-stamp
FMNIST  := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: help install data browser run test clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(PYTHON):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PYTHON)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

$(TSTAMP): $(STAMP)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev,ray,optuna]'
	touch $(TSTAMP)

install: $(STAMP)  ## create .venv and install wrt with its pinned dependencies

data:  ## install Fashion-MNIST (Debian package dataset-fashion-mnist) when missing and root
	@if [ -f "$(FMNIST)" ] || [ -n "$$WRT_DATA" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST is missing: run 'sudo apt-get install -y dataset-fashion-mnist' or set WRT_DATA"; \
	fi

run: install data  ## the demo: 3 schemes × 5 attacks + null runs on Fashion-MNIST, then wrt-analyze
	bash scripts/reproduce_demo.sh

browser:  ## install Debian's chromium (report.html's browser test) when missing and root
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium is missing: run 'sudo apt-get install -y chromium' (else the browser test skips)"; \
	fi

test: $(TSTAMP) data browser  ## install the test extras (pytest, the Ray launcher, the Optuna sweeper), run the test suite
	$(PYTHON) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

clean:  ## remove cached artifacts and results (keeps .venv)
	rm -rf .store results/runs results/hydra
