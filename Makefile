# Two commands on a fresh machine: `make demo` and `make test`.
# Every install goes through requirements.lock (the Dockerfile uses the same file).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup demo test bench lint lock image clean

setup: $(STAMP)

# Quiet: `make demo` should print the story only (the editable install's setuptools notice is silenced).
$(STAMP): requirements.lock pyproject.toml
	@echo "setting up $(VENV) from requirements.lock (once; a minute or two)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -r requirements.lock
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: setup
	@$(BIN)/dragon demo

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: setup
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: setup
	$(BIN)/ruff check dragon training optimizer inference deploy tests bench
	$(BIN)/ruff format --check dragon training optimizer inference deploy tests bench

# Re-resolve the pinned set after changing dependencies in pyproject.toml.
lock: setup
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

# The SageMaker/Lambda container (needs Docker; README, Deploy on AWS): the commit and repository baked in,
# tagged with the commit's first 12 characters as CI tags it (deploy/buildspec.yml, the stack's ImageBuild).
# `make image IMAGE=<account>.dkr.ecr.<region>.amazonaws.com/<plant>-<env>` names it for a push.
IMAGE ?= yet-dragon
BASE_REGISTRY ?= public.ecr.aws/docker/library
image:
	docker build --build-arg BASE_REGISTRY=$(BASE_REGISTRY) --build-arg GIT_COMMIT=$$(git rev-parse HEAD) \
	  --build-arg GIT_REPOSITORY=$$(git remote get-url origin 2>/dev/null || echo unknown) \
	  -t $(IMAGE):$$(git rev-parse --short=12 HEAD) .

clean:
	rm -rf $(VENV) .dragon .pytest_cache
