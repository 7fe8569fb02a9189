"""The hand-off's memory order on a weakly ordered CPU, checked without one.

x86-64 keeps stores in order (TSO), so a missing barrier goes unnoticed there. These tests
compile the real callback, the producer and the reset request afresh, retarget their
LLVM IR to AArch64 with llvmlite (the LLVM Numba itself uses) and read the assembly: the
acquire loads and the acquire fence of the sequence lock's reader, the release fence and
release store of its writer, release stores of the counters other threads read, an
atomic read-modify-write for the reset request, and no read of a system register user
code may not read (the old cycle counter was ``PMCCNTR_EL0`` there: a trap).
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import llvmlite.binding as llvm
import pytest

TRIPLE = "aarch64-unknown-linux-gnu"
# System registers EL0 code may read on Linux/AArch64 (thread pointer, generic timer, FP status).
USER_READABLE = {"tpidr_el0", "tpidrro_el0", "cntvct_el0", "cntfrq_el0", "fpcr", "fpsr", "nzcv"}

_PROBE = r"""
import json, sys
from aether_rt.audio import callback
from aether_rt.dsp import _kernels
out = sys.argv[1]
irs = {
    "callback": callback.pa_callback.inspect_llvm(),
    "publish": next(iter(_kernels.publish.inspect_llvm().values())),
    "reset": next(iter(_kernels.request_reset.inspect_llvm().values())),
}
with open(out, "w") as f:
    json.dump(irs, f)
"""


def _aarch64_machine() -> llvm.TargetMachine:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm.Target.from_triple(TRIPLE).create_target_machine(cpu="generic", features="", opt=2)


def _retargeted(ir: str, machine: llvm.TargetMachine) -> tuple[str, list[str]]:
    """``ir`` for AArch64; helpers Numba links in but the path never calls and that hold
    x86-only intrinsics (``NRT_decref``'s atomic decrement) become declarations."""
    ir = re.sub(r'^target triple = ".*"$', f'target triple = "{TRIPLE}"', ir, flags=re.M)
    ir = re.sub(r'^target datalayout = ".*"$', f'target datalayout = "{machine.target_data}"', ir, flags=re.M)
    dropped = []

    def declare(m: re.Match[str]) -> str:
        block = m.group(0)
        if "@llvm.x86." not in block:
            return block
        head = block.split("{", 1)[0].replace("define ", "declare ", 1)
        head = re.sub(r"\b(linkonce_odr|local_unnamed_addr|dso_local)\b|#\d+", "", head)
        dropped.append(re.search(r"@\"?([\w.$]+)", head).group(1))
        return head.rstrip() + "\n"

    return re.sub(r"^define [^\n]*\{\n.*?^\}\n", declare, ir, flags=re.M | re.S), dropped


def _assembly(ir: str) -> tuple[str, list[str]]:
    machine = _aarch64_machine()
    text, dropped = _retargeted(ir, machine)
    module = llvm.parse_assembly(text)
    module.verify()
    return machine.emit_assembly(module), dropped


def _count(asm: str) -> collections.Counter[str]:
    ops = re.findall(r"^\s+(dmb\s+\w+|ldar\w*|stlr\w*|ldaxr\w*|stlxr\w*|ldxr\w*|ldadd\w*|mrs)\b", asm, flags=re.M)
    return collections.Counter(re.sub(r"\s+", " ", op) for op in ops)


@pytest.fixture(scope="module")
def irs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The LLVM IR of the audio path, compiled afresh (an empty Numba cache)."""
    folder = tmp_path_factory.mktemp("ir")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(folder / "cache"))
    out = folder / "ir.json"
    subprocess.run([sys.executable, "-c", _PROBE, str(out)], env=env, check=True, timeout=600)
    return json.loads(Path(out).read_text())


def test_the_callback_reads_the_ring_with_acquire_and_fences_the_copy(irs: dict[str, str]) -> None:
    asm, dropped = _assembly(irs["callback"])
    assert not [name for name in dropped if name.startswith(("_ZN9aether_rt", "cfunc"))], dropped
    ops = _count(asm)
    # `published` (twice in the adoption, once to find the next split) and the reset request.
    assert ops["ldar"] >= 4, ops
    # The acquire fence between the slot's copy and the re-read of `published`.
    assert ops["dmb ishld"] + ops["dmb ish"] >= 1, ops
    # Release stores: the frame clock, the tap's and the adoption log's counts.
    assert ops["stlr"] >= 3, ops


def test_the_callback_reads_no_privileged_register_and_times_itself_with_the_os_clock(irs: dict[str, str]) -> None:
    asm, _ = _assembly(irs["callback"])
    registers = _system_registers(asm)
    assert registers <= USER_READABLE, registers
    assert "llvm.readcyclecounter" not in irs["callback"]
    if sys.platform.startswith("linux"):
        assert re.search(r"^\s+bl\s+clock_gettime\b", asm, flags=re.M)


def test_the_producer_fences_before_overwriting_a_slot_and_publishes_with_release(irs: dict[str, str]) -> None:
    asm, _ = _assembly(irs["publish"])
    ops = _count(asm)
    assert ops["dmb ish"] >= 1, ops  # the release fence (a full dmb on AArch64)
    assert ops["stlr"] >= 1, ops  # published = seq + 1
    # The fence comes before the first store into the slot: the first dmb precedes the stlr
    # and precedes the first floating-point store (the table's coefficients).
    lines = asm.splitlines()
    first = {
        key: next(i for i, line in enumerate(lines) if re.match(pattern, line.strip()))
        for key, pattern in (("dmb", r"dmb\s+ish\b"), ("stlr", r"stlr\b"), ("fstore", r"st[rpu]\w*\s+d\d+"))
    }
    assert first["dmb"] < first["fstore"] < first["stlr"], first


def test_the_reset_request_is_one_atomic_read_modify_write(irs: dict[str, str]) -> None:
    ops = _count(_assembly(irs["reset"])[0])
    # armv8.0: a load-exclusive / store-release-exclusive loop (LSE cores: one ldaddl).
    assert ops["stlxr"] + ops["ldaddl"] + ops["ldaddal"] >= 1, ops


def _system_registers(asm: str) -> set[str]:
    return {r.lower() for r in re.findall(r"^\s+mrs\s+\w+,\s*(\w+)", asm, flags=re.M)}


def test_the_checks_see_what_they_look_for() -> None:
    """Controls: a cycle-counter read compiles to an ``mrs`` the check sees, and a read of
    PMCCNTR_EL0 (what older LLVM releases emitted for it: a trap at EL0 on Linux) is rejected."""
    ir = (
        "declare i64 @llvm.readcyclecounter()\n"
        "define i64 @probe() {\n  %t = call i64 @llvm.readcyclecounter()\n  ret i64 %t\n}\n"
    )
    asm, _ = _assembly(f'target triple = "x"\ntarget datalayout = "y"\n{ir}')
    assert _system_registers(asm), asm
    assert not _system_registers("\tmrs\tx8, PMCCNTR_EL0\n") <= USER_READABLE
