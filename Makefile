# Kiln — the two commands a new user needs:
#   make demo   set everything up, build, and run the demo
#   make test   set everything up, build, and run the test suite
# Both install missing Debian packages first (scripts/setup.sh).

SWIFT ?= swift
# Release builds for both: the tests exercise real kernels and the demo trains.
CONFIG ?= release

.PHONY: all setup build demo test sanitize fuzz-regress clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c $(CONFIG) --product kiln

demo: build
	@bash scripts/demo.sh "$$($(SWIFT) build -c $(CONFIG) --show-bin-path)/kiln"

test: setup
	$(SWIFT) build -c $(CONFIG) --build-tests
	bash scripts/conformance.sh "$$($(SWIFT) build -c $(CONFIG) --show-bin-path)/kiln"
	@# The tests' scratch files (~200 MB a run) in a directory of their own, removed after
	@# (readable by all: one test runs kiln as user nobody).
	@# Compiles tune (algorithms measured, cached in the temporary directory so each run starts
	@# fresh); the suites comparing compiled programs with the reference kernels and
	@# onnxruntime run again with the built-in rule's choices (KILN_TUNE=0).
	tmp=$$(mktemp -d -t kiln-test.XXXXXX) && trap 'rm -rf "$$tmp"' EXIT && chmod 755 "$$tmp" && \
	TMPDIR=$$tmp KILN_CACHE_DIR=$$tmp/cache KILN_VENV=$${KILN_VENV:-$$HOME/.cache/kiln/venv} $(SWIFT) test -c $(CONFIG) --skip-build --skip KernelTests && \
	TMPDIR=$$tmp KILN_TUNE=0 KILN_VENV=$${KILN_VENV:-$$HOME/.cache/kiln/venv} $(SWIFT) test -c $(CONFIG) --skip-build \
	  --filter 'CompiledTests|CompiledPathTests|TransformerPatternTests' && \
	TMPDIR=$$tmp KILN_BIN="$$($(SWIFT) build -c $(CONFIG) --show-bin-path)/kiln" bash scripts/kernel-levels.sh -c $(CONFIG) --skip-build
	@# The Python package (python/), installed as a user installs it (pip builds the native
	@# parts with swift build, here already up to date), then its tests against onnxruntime.
	venv=$${KILN_VENV:-$$HOME/.cache/kiln/venv} && $$venv/bin/pip install -q ./python && \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider python/tests
	FUZZ_REGRESS_SECONDS=5 bash scripts/fuzz.sh --regress

# The whole suite and the CLI under AddressSanitizer + UndefinedBehaviorSanitizer (slow; not in CI).
sanitize: setup
	bash scripts/sanitize.sh

# Every fuzz corpus replayed under libFuzzer + ASan, then 10 s of fuzzing per target (make
# test runs the same with 5 s).
fuzz-regress: setup
	bash scripts/fuzz.sh --regress

clean:
	rm -rf .build .build-sanitize .build-fuzz
