# The two commands: `make demo` (the main job) and `make test` (the whole suite), on the lock stack.
# Both first run `make setup`, which builds .venv with the pinned stack (idempotent).
# The other supported stacks: `make test-legacy`, `make test-forks` (each its own venv);
# `make test-stacks` runs the suite on all three and the cross-stack checkpoint check (CI).
# `make docs` builds the documentation site (docs/en) into docs/_build/html, warnings as errors.
STACKS := lock legacy forks
VENV_lock := .venv
VENV_legacy := .venv-legacy
VENV_forks := .venv-forks
PY := $(VENV_lock)/bin/python

.PHONY: setup test demo docs lint clean test-stacks cross-stack $(addprefix setup-,$(STACKS)) \
	$(addprefix test-,$(STACKS))

setup: setup-lock
test: test-lock

# setup-<stack> and test-<stack> for each stack (phony targets take no pattern rules).
define stack_targets
setup-$(1):
	@MMSLAK_VENV=$(VENV_$(1)) bash tools/setup_env.sh $(1)

test-$(1): setup-$(1)
	MMSLAK_STACK=$(1) $(VENV_$(1))/bin/python -m pytest tests
endef
$(foreach stack,$(STACKS),$(eval $(call stack_targets,$(stack))))

cross-stack: setup-legacy setup-forks
	python3 tools/ci/cross_stack_check.py legacy=$(VENV_legacy)/bin/python \
		forks=$(VENV_forks)/bin/python

test-stacks: test-lock test-legacy test-forks cross-stack

demo: setup
	$(PY) demo/run_demo.py

# The same build as tests/test_docs.py and .readthedocs.yaml: nitpicky, any warning fails.
docs: setup
	$(PY) -m sphinx -W --keep-going -n -b html docs/en docs/_build/html
	@echo "[docs] open docs/_build/html/index.html"

lint: setup
	$(PY) -m flake8 mmslak tools demo tests configs projects
	$(PY) -m isort --check-only --diff mmslak tools demo tests configs projects

clean:
	rm -rf $(foreach stack,$(STACKS),$(VENV_$(stack))) work_dirs outputs docs/_build
