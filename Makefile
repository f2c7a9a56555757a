# Two commands on a fresh machine (Python 3.10+):
#   make demo   train a pitch-conditioned model on the built-in notes, generate samples/demo/, score pitch
#   make test   the test suite (CPU; the web page test also needs Debian's chromium + chromium-driver)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test demo bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,web,metrics]'
	$(BIN)/python -c "import audiodiff._check as c; c.check_torch_pair()"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH bash recipes/tones/run.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/networks.py --out benchmarks/results/networks.json
	$(BIN)/python benchmarks/data.py --out benchmarks/results/data.json
	$(BIN)/python benchmarks/vocoders.py --out benchmarks/results/vocoders.json

clean:
	rm -rf $(VENV) runs samples/demo .pytest_cache
