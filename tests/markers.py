"""Marks shared by test modules."""

from __future__ import annotations

import importlib.util

import pytest

# find_spec, not importorskip: importing llama_cpp loads its native library in the test
# process and leaves two /dev/null files open (llama_cpp._utils), reported at exit.
REAL_MODEL = [
    pytest.mark.real_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed: run scripts/install_local_model.sh",
    ),
]
