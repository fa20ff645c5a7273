"""glibc malloc tuning at import: applied on glibc, never over the user's own settings."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from autotensor import memory

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_thresholds_are_set_on_glibc_only():
    assert memory.tune_malloc(environ={}) is ON_GLIBC


@pytest.mark.parametrize("environ", [{"MALLOC_TRIM_THRESHOLD_": "131072"},
                                     {"MALLOC_MMAP_THRESHOLD_": "65536"},
                                     {"MALLOC_ARENA_MAX": "2"}, {"MALLOC_TOP_PAD_": "0"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=4096"}])
def test_a_users_malloc_settings_win(environ):
    assert memory.user_chose_malloc_settings(environ)
    assert memory.tune_malloc(environ) is False


def test_unrelated_variables_do_not_count_as_a_choice():
    assert not memory.user_chose_malloc_settings({"MALLOC": "x", "GLIBC_TUNABLES": "glibc.cpu.x=1",
                                                  "OMP_NUM_THREADS": "2"})


def test_import_works_with_the_user_opting_out():
    code = "import autotensor as at; print((at.ones(3) * 2).sum().item())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MALLOC_TRIM_THRESHOLD_": "131072", "PATH": ""}, check=True)
    assert out.stdout.strip() == "6.0"
