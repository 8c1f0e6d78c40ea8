# ragspec: two commands on a fresh machine.
#   make demo   create .venv, install everything, pull the default models, answer a demo question
#   make test   install test dependencies and run the test suite
# Every dependency goes through here; torch is pinned (constraints.txt) to the CPU build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed
STORE  ?= .ragspec/demo
QUESTION ?= When did the Normans conquer England, and who led them?

.PHONY: install models demo test test-fast bench-retrieval clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[all,test]"
	$(BIN)/python -m ragspec.models.kernels
	touch $(STAMP)

models: install
	$(BIN)/ragspec models pull smollm2-135m
	$(BIN)/ragspec models pull minilm-l6

demo: models
	$(BIN)/ragspec ingest data/demo/corpus.jsonl --store $(STORE)
	$(BIN)/ragspec ask "$(QUESTION)" --store $(STORE)

test: models
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not integration"

bench-retrieval: models
	$(BIN)/ragspec bench retrieval data/squad --json bench-out/retrieval-squad.json
	$(BIN)/ragspec bench retrieval data/hotpotqa --json bench-out/retrieval-hotpotqa.json

clean:
	rm -rf $(VENV) .ragspec build *.egg-info
