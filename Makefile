# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: demo test lint docs install clean

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	# every extra (serve, onnx, report, cluster, node): the pins above already satisfy them, so this installs nothing new
	$(BIN)/python -m pip install -q --no-build-isolation -e '.[all]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/skinnet demo

lint: $(BIN)/.installed
	$(BIN)/ruff check skinnet tests benchmarks docs

# the docs site: a broken link or anchor, a page missing from the nav, a stale generated reference page or a
# docstring mkdocstrings cannot render fails the build (site/ is ignored; never --quiet: it hides the warnings
# and strict mode then passes)
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: lint docs
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo_output site .pytest_cache .ruff_cache
