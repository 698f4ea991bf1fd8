# The two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both first run `make setup`, which builds .venv with the pinned stack (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup test demo lint clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests

demo: setup
	$(PY) demo/run_demo.py

lint: setup
	$(PY) -m flake8 mmslak tools demo tests configs
	$(PY) -m isort --check-only --diff mmslak tools demo tests configs

clean:
	rm -rf $(VENV) work_dirs outputs
