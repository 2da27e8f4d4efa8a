# The two commands a new user needs: `make run` and `make test`.
# Both build their own virtualenv from pyproject.toml; nothing is assumed installed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DESIST_HOME ?= .desist
export DESIST_HOME
# desist runs on closed networks: no MLflow usage telemetry.
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: run test lint typecheck unit venv clean lock audit-deps golden team-up team-down team-status test-team

# Reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

## The whole mission on embedded defaults (synthetic cohort, SQLite MLflow store under $(DESIST_HOME)):
## train the risk and pathway models, promote both through their gates, start the service,
## ask it for one score and one recommendation with a key made for the run, check both were
## audited, stop it, and print what was built and the next commands (pipeline/mission.py).
run: venv
	$(BIN)/desist mission --risk-config configs/synthetic.toml --pathway-config configs/pathways.toml

## Every test, plus lint, format and type checks.
test: venv lint typecheck unit

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

# The team tests start real servers and Spark: they have their own target (test-team).
# Three pytest-xdist workers on the project's 2-core machines (each at one native thread,
# tests/conftest.py): many tests wait on servers and subprocesses, so two workers kept the
# cores only ~56 % busy (9:06 wall on an AMD host; three, 7:57 in the same hour). A file's
# tests stay on one worker, so its module fixtures are built once, and the costly session
# stores once per run (tests/support/shared.py). UNIT_WORKERS=0 runs one process.
UNIT_WORKERS ?= 3
unit: venv
	$(BIN)/pytest -m "not team" -n $(UNIT_WORKERS) --dist loadfile

## The runtime dependencies, pinned: a fresh virtualenv with `pip install .` (no extras), frozen.
lock:
	rm -rf $(DESIST_HOME)/lock-venv
	$(PYTHON) -m venv $(DESIST_HOME)/lock-venv
	$(DESIST_HOME)/lock-venv/bin/python -m pip install --quiet .
	{ echo "# Runtime dependencies of desist, pinned (pip install . into a fresh virtualenv, frozen)."; \
	  echo "# Regenerate: make lock. Audit: make audit-deps (docs/reliability.md)."; \
	  $(DESIST_HOME)/lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^desist'; \
	} > requirements/runtime.lock
	rm -rf $(DESIST_HOME)/lock-venv

## Known vulnerabilities in the locked runtime dependencies. Needs the advisory database
## (PyPI / OSV) online: run it where that is reachable, never as part of `make test`.
audit-deps: venv
	$(BIN)/python -m pip install --quiet -e '.[audit]'
	$(BIN)/pip-audit --strict --requirement requirements/runtime.lock --no-deps --disable-pip \
		--progress-spinner off

clean:
	rm -rf $(VENV) $(DESIST_HOME)

## Rewrite the pinned golden scores (tests/golden/expected.json) after a change meant to move
## them, recording why: make golden WHY="what changed and why the scores may move".
## Then commit the file with a message that says why. `make test` only ever compares.
golden: venv
	@test -n "$$WHY" || { echo 'make golden needs WHY="why the pinned scores change"' >&2; exit 2; }
	$(BIN)/python -m tests.support.golden --regenerate --why "$$WHY"

## The team stack (docs/deployment.md): its extra dependencies, installed once per pyproject change.
$(VENV)/.team-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,team]'
	touch $@

## Start the team's MLflow server on one machine for a trial: PostgreSQL store (127.0.0.1:5432),
## proxied artifacts under $(DESIST_HOME)/team, basic-auth users for each role. Needs
## MLFLOW_FLASK_SERVER_SECRET_KEY, MLFLOW_AUTH_ADMIN_PASSWORD and DESIST_TEAM_<ROLE>_PASSWORD.
team-up: $(VENV)/.team-installed
	$(BIN)/python -m pipeline.team_stack up

team-down: venv
	$(BIN)/python -m pipeline.team_stack down

team-status: venv
	$(BIN)/python -m pipeline.team_stack status

## Tests against the real team parts (MLflow server with roles, Spark). They skip a part
## that is missing unless DESIST_REQUIRE_TEAM=1 (.ci/run), where they fail instead.
test-team: $(VENV)/.team-installed
	$(BIN)/pytest -m team
