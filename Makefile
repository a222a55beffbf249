# The kit's commands. Each target creates .venv and installs the package into it when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= auto
ONLY ?=
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup figures test test-unit test-notebooks site lab bench lint refresh-notebooks doctor assign prepare-notebooks clean

help:
	@echo "make figures [PROFILE=smoke|laptop|gpu]   run every notebook, write build/<profile>/report.html"
	@echo "make test                                 the full test suite (unit, reference, nbval, runner)"
	@echo "make lab                                  JupyterLab on notebooks/"
	@echo "make site                                 the course website (Jupyter Book) → build/site/html"
	@echo "make bench                                time the hot paths against their baselines"
	@echo "make refresh-notebooks [ONLY=01]          re-run notebooks in place under the laptop profile"
	@echo "make doctor                               check the environment and print fixes"
	@echo "make assign                               student and instructor editions + autograder → build/assign"
	@echo "make prepare-notebooks                    Colab/Binder links and the install step in every notebook"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,site,grading]"
	@touch $(STAMP)

figures: $(STAMP)
	$(PY) -m helpers run --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

# nbval runs every notebook under the smoke profile first; its figures (build/test/smoke/figures)
# are what the figure-map test then checks.
test: $(STAMP)
	rm -rf build/test
	COURSE_PROFILE=smoke COURSE_STATIC_WIDGETS=1 COURSE_BUILD_DIR=$(CURDIR)/build/test MPLBACKEND=Agg $(PY) -m pytest notebooks tests helpers \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=600 --doctest-modules -p no:cacheprovider $(PYTEST_ARGS)

test-unit: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest tests helpers --doctest-modules $(PYTEST_ARGS)

test-notebooks: $(STAMP)
	COURSE_PROFILE=smoke COURSE_STATIC_WIDGETS=1 MPLBACKEND=Agg $(PY) -m pytest notebooks --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 -p no:cacheprovider $(PYTEST_ARGS)

site: $(STAMP)
	$(PY) -m helpers site

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check helpers tests benchmarks

refresh-notebooks: $(STAMP)
	$(PY) -m helpers refresh --profile laptop $(if $(ONLY),--only $(ONLY))

doctor: $(STAMP)
	$(PY) -m helpers doctor

assign: $(STAMP)
	$(PY) -m helpers assign $(if $(ONLY),--only $(ONLY))

prepare-notebooks: $(STAMP)
	$(PY) -m helpers prepare-notebooks

clean:
	rm -rf build .pytest_cache
