# wmtutor: two commands set up everything on a fresh machine.
#   make lab    create .venv, install wmtutor + JupyterLab, register the kernel, open the course
#   make test   the same set-up, then lint, unit tests and every notebook (nbval, tiny preset)
#   make browser  run notebook 04 (BROWSER_ARGS="--notebook all": 04 and 07) in headless Chromium

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Pinned: on the course machines this is a local CPU wheel; an unpinned torch would pull
# gigabytes of CUDA packages.
TORCH  ?= torch==2.13.0
PRESET ?= laptop
# `make test` runs on this many pytest-xdist workers (the notebooks on one, in order)
TEST_JOBS ?= 2

.PHONY: setup lab test unit notebooks lint strip assets bench browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[course,dev]"
	$(BIN)/python -m ipykernel install --user --name wmtutor --display-name "Python (wmtutor)" >/dev/null
	-git rev-parse --git-dir >/dev/null 2>&1 && $(BIN)/nbstripout --install
	touch $@

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: setup lint
	WMTUTOR_PRESET=tiny $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-current-env -q -n $(TEST_JOBS)

unit: setup
	$(BIN)/python -m pytest tests -q -n $(TEST_JOBS)

notebooks: setup
	WMTUTOR_PRESET=$(PRESET) $(BIN)/python -m pytest notebooks --nbval-lax --nbval-current-env -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

strip: setup
	$(BIN)/nbstripout notebooks/*.ipynb

assets: setup
	MPLBACKEND=Agg $(BIN)/python toy/mdn.py --preset laptop --out assets
	MPLBACKEND=Agg $(BIN)/python toy/cma_es.py --preset laptop --out assets

bench: setup
	$(BIN)/python benchmarks/cmaes_vs_pycma.py
	$(BIN)/python benchmarks/gather.py
	$(BIN)/python benchmarks/vae.py
	$(BIN)/python benchmarks/mdnrnn.py
	$(BIN)/python benchmarks/controller.py
	$(BIN)/python benchmarks/dream.py
	$(BIN)/python benchmarks/toys.py

# The course in a real browser: JupyterLab + headless Chromium on a copy of the notebooks,
# tiny preset, temporary runs folder (tests/browser/check_lab.py --help for BROWSER_ARGS).
APT_CHROMIUM := chromium fonts-liberation

browser: setup $(VENV)/.browser
	@if ! $(BIN)/python tests/browser/check_lab.py --find-chromium >/dev/null 2>&1; then \
		if [ -z "$$CHROMIUM" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's Chromium: apt-get install -y $(APT_CHROMIUM)"; \
			apt-get update -qq && apt-get install -y -qq $(APT_CHROMIUM) >/dev/null; \
		else \
			$(BIN)/python tests/browser/check_lab.py --find-chromium; \
			echo "make browser needs Chromium: run \`sudo apt-get install -y $(APT_CHROMIUM)\`"; \
			echo "(or set CHROMIUM=/path/to/chromium-or-chrome)"; exit 2; \
		fi; \
	fi
	$(BIN)/python tests/browser/check_lab.py $(BROWSER_ARGS)

$(VENV)/.browser: pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[course,dev,browser]"
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
