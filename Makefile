# Two commands for a newcomer:  make book  (build the book)  and  make test  (run every test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# DGMLIB_PROFILE=quick|book|gpu chooses the size of every chapter (default: gpu with CUDA, else book).
PROFILE ?= $(shell $(BIN)/python -c "from dgmlib.config import profile; print(profile())" 2>/dev/null)

.PHONY: book test test-unit test-chapters test-book venv vendor twins clean benchmarks format

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@# torch: keep a torch already present (e.g. a CUDA build); else the pinned CPU-or-default wheel.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	touch $@

vendor: _vendor/.versions
_vendor/.versions: scripts/fetch_vendor.sh
	bash scripts/fetch_vendor.sh

# The .ipynb twins (for Colab) are generated from the MyST chapters, without outputs.
twins: venv
	$(BIN)/python scripts/twins.py --write

# Build the whole book into _build/html. The execution cache is keyed by code only, so it is
# cleared when the profile changes.
book: venv vendor
	@mkdir -p _build
	@if [ -f _build/.profile ] && [ "$$(cat _build/.profile)" != "$(PROFILE)" ]; then \
	  echo "profile changed to $(PROFILE): clearing the execution cache"; rm -rf _build/.jupyter_cache _build/html _build/jupyter_execute; fi
	@echo "$(PROFILE)" > _build/.profile
	@start=$$(date +%s); \
	DGMLIB_PROFILE=$(PROFILE) $(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going \
	  && echo "make book: $$(( $$(date +%s) - start )) s in the $(PROFILE) profile; open _build/html/index.html"

# Every test: dgmlib unit tests, every chapter through nbval (quick profile), the book build
# with -W -n and the .ipynb twins, and the built HTML in headless Chromium.
test: venv vendor
	$(BIN)/python -m pytest tests book --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -ra

test-unit: venv
	$(BIN)/python -m pytest tests -m "not book and not slow" -ra

test-chapters: venv
	$(BIN)/python -m pytest book --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -ra

benchmarks: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf _build

# ruff (pinned in requirements.txt) over the package, tests, benchmarks, scripts and the
# chapters' code cells; tests/test_style.py checks the same.
format: venv
	$(BIN)/ruff check --fix --quiet dgmlib benchmarks tests scripts conftest.py book/_ext
	$(BIN)/ruff format --quiet dgmlib benchmarks tests scripts conftest.py book/_ext
	$(BIN)/python scripts/format_chapters.py --fix
	$(BIN)/python scripts/twins.py --write >/dev/null
