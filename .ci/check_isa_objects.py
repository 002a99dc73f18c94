"""Portability check of a pysim CMake build tree: AVX code only where dispatch expects it.

A wheel must run on any x86-64 CPU and choose its kernels at run time, so:

1. Object files other than the x86 ISA units listed in ISA_SOURCES contain no AVX or
   AVX-512 instruction: no ymm/zmm/mask register and no VEX/EVEX-encoded ("v"-prefixed)
   instruction, which a pre-AVX CPU would fault on (SIGILL) even on xmm registers.
2. No AVX code can reach baseline callers through the linker: an inline function (a std::
   template, a header helper) instantiated in an ISA file is compiled with that file's -m
   flags and emitted as a weak COMDAT symbol; if a baseline file uses the same function, the
   linker keeps one copy, possibly the AVX one, and the baseline path faults on an old CPU.
   Every weak AVX-containing function of an ISA object that a baseline object also defines or
   calls is reported.
3. Nothing is compiled with -march=native (or -mtune/-mcpu=native), no ISA flag (-mavx*,
   -mfma, -mf16c) reaches a file other than the ISA units, and the developer-only
   PYSIM_NATIVE option is off in the build and in pyproject.toml.

Usage: python .ci/check_isa_objects.py [BUILD_DIR ...]   (default: every build/*/ tree)
Imported by tests/test_hardening.py, which skips when objdump or a build tree is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ISA_SOURCES = (
    "csrc/simd/isa/avx2.cpp",
    "csrc/simd/isa/avx512.cpp",
    # compressed-vector kernels, one unit per level with that level's flags
    "csrc/simd/isa/quant_avx2.cpp",
    "csrc/simd/isa/quant_avx512.cpp",
    "csrc/simd/isa/quant_avx512_vnni.cpp",
    "csrc/simd/isa/quant_avx512_vnni_bf16.cpp",
)
AVX_REGISTER = re.compile(r"%(?:[yz]mm\d+|k[0-7]\b)")
# VEX/EVEX mnemonics all start with "v"; the only legacy ones that do are verr/verw.
VEX_MNEMONIC = re.compile(r"^v(?!err\b|erw\b)[a-z0-9]+")
ISA_FLAG = re.compile(r"(?:^|\s)(-m(?:avx\S*|fma\b|f16c\b|amx\S*)|/arch:\S+)")
NATIVE_FLAG = re.compile(r"-m(?:arch|tune|cpu)=native")


def find_build_dirs(root: Path) -> list[Path]:
    """Every CMake build tree of pysim under root/build (dev, wheel, sanitized...)."""
    base = Path(root) / "build"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / "CMakeFiles" / "pysim_core.dir").is_dir())


def find_build_dir(root: Path) -> Path | None:
    dirs = find_build_dirs(root)
    return dirs[0] if dirs else None


def _is_isa_object(path: Path) -> bool:
    s = path.as_posix()
    return any(s.endswith(src + ".o") or s.endswith(src + ".obj") for src in ISA_SOURCES)


def _objdump(path: Path) -> str:
    return subprocess.run(
        ["objdump", "-d", "-w", "--no-show-raw-insn", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def avx_functions(path: Path) -> dict[str, str]:
    """{function symbol: first AVX instruction in it} for an object or shared library."""
    found: dict[str, str] = {}
    func = "?"
    for line in _objdump(path).splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            func = header.group(1)
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not re.match(r"^\s*[0-9a-f]+:$", parts[0]):
            continue
        insn = parts[-1].strip()
        if func in found:
            continue
        if AVX_REGISTER.search(insn) or VEX_MNEMONIC.match(insn):
            found[func] = insn
    return found


def _symbols(path: Path) -> dict[str, str]:
    """{mangled name: nm type letter} of what an object defines (T, W, ...) or uses (U)."""
    out = subprocess.run(["nm", str(path)], check=True, capture_output=True, text=True).stdout
    names: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            names[parts[-1]] = parts[-2]
    return names


def check_objects(build: Path) -> tuple[list[str], dict]:
    """Items 1 and 2 above for one build tree; returns (problems, counts).

    Item 2 is checked on the objects, not on the linked module, which pybind11 strips: a weak
    (COMDAT, nm type W) function that holds AVX code in an ISA object and that a baseline
    object also defines or calls is one the linker may resolve to the AVX copy.
    """
    build = Path(build)
    objects = sorted((build / "CMakeFiles").rglob("*.o"))
    baseline = [o for o in objects if not _is_isa_object(o)]
    isa = [o for o in objects if _is_isa_object(o)]
    problems: list[str] = []
    baseline_symbols: set[str] = set()
    for obj in baseline:
        for func, insn in avx_functions(obj).items():
            problems.append(f"{obj.relative_to(build)}: AVX instruction in {func}: {insn}")
        baseline_symbols |= set(_symbols(obj))
    weak_avx = 0
    for obj in isa:
        symbols = _symbols(obj)
        for func, insn in avx_functions(obj).items():
            if symbols.get(func) not in ("W", "V", "u"):
                continue  # local (anonymous namespace) or the ISA's own entry point
            weak_avx += 1
            if func in baseline_symbols:
                problems.append(
                    f"{obj.relative_to(build)}: weak function {func} holds AVX code ({insn}) "
                    "and baseline objects define or call it too; the linker may keep the AVX "
                    "copy (give it internal linkage inside the ISA file)"
                )
    summary = {
        "baseline_objects": len(baseline),
        "isa_objects": len(isa),
        "weak_avx_functions": weak_avx,
    }
    return problems, summary


def _compile_flags(build: Path) -> dict[str, str]:
    """{source file: compiler flags} from the Ninja or Makefile build of CMake."""
    flags: dict[str, str] = {}
    ninja = build / "build.ninja"
    if ninja.exists():
        source = None
        for line in ninja.read_text().splitlines():
            m = re.match(r"^build \S+\.(?:o|obj): CXX_COMPILER\S* (\S+)", line)
            if m:
                source = m.group(1)
                flags[source] = ""
            elif source and line.startswith("  ") and "=" in line:
                key, _, value = line.strip().partition("=")
                if key.strip() in ("FLAGS", "DEFINES"):
                    flags[source] += " " + value.strip()
            elif not line.startswith("  "):
                source = None
        return flags
    for flags_make in (build / "CMakeFiles").rglob("flags.make"):
        text = flags_make.read_text()
        common = " ".join(re.findall(r"^CXX_FLAGS = (.*)$", text, re.M))
        target = flags_make.parent.name
        flags[f"{target} (all sources)"] = common
        for src, extra in re.findall(r"^# Custom flags: (\S+)_FLAGS = (.*)$", text, re.M):
            flags[src] = common + " " + extra
    return flags


def check_flags(build: Path) -> list[str]:
    """Item 3 for one build tree."""
    build = Path(build)
    problems = []
    flags = _compile_flags(build)
    if not flags:
        problems.append(f"{build}: no compile commands found (neither build.ninja nor flags.make)")
    for source, f in flags.items():
        if NATIVE_FLAG.search(f):
            problems.append(f"{source}: compiled with {NATIVE_FLAG.search(f).group(0)}")
        isa_flags = ISA_FLAG.findall(f)
        if isa_flags and not any(source.replace("\\", "/").endswith(s) for s in ISA_SOURCES):
            problems.append(f"{source}: ISA flags {isa_flags} outside the per-ISA files")
    cache = build / "CMakeCache.txt"
    if cache.exists():
        text = cache.read_text()
        if re.search(r"^PYSIM_NATIVE:BOOL=(ON|TRUE|1|YES)$", text, re.M | re.I):
            problems.append(f"{cache}: PYSIM_NATIVE is on")
        for var in re.findall(r"^CMAKE_CXX_FLAGS[A-Z_]*:\w+=(.*)$", text, re.M):
            if NATIVE_FLAG.search(var):
                problems.append(f"{cache}: CMAKE_CXX_FLAGS contains {var!r}")
    return problems


def check_sources(root: Path) -> list[str]:
    """-march=native may only appear in CMakeLists.txt under if(PYSIM_NATIVE), which
    pyproject.toml keeps off."""
    root = Path(root)
    problems = []
    depth_native = 0
    stack: list[bool] = []
    for no, line in enumerate((root / "CMakeLists.txt").read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        if re.match(r"\s*option\s*\(", code, re.I):
            continue  # an option's description text, not a flag
        opener = re.match(r"\s*if\s*\((.*)\)", code, re.I)
        if opener:
            stack.append(opener.group(1).strip() == "PYSIM_NATIVE")
            depth_native = sum(stack)
            continue
        if re.match(r"\s*endif\s*\(", code, re.I) and stack:
            stack.pop()
            depth_native = sum(stack)
            continue
        if NATIVE_FLAG.search(code) and depth_native == 0:
            problems.append(f"CMakeLists.txt:{no}: -march=native outside if(PYSIM_NATIVE)")
    pyproject = (root / "pyproject.toml").read_text()
    if not re.search(r"^PYSIM_NATIVE\s*=\s*false\s*$", pyproject, re.M):
        problems.append(
            "pyproject.toml: [tool.scikit-build.cmake.define] must set PYSIM_NATIVE = false"
        )
    for no, line in enumerate(pyproject.splitlines(), 1):
        if NATIVE_FLAG.search(line):
            problems.append(f"pyproject.toml:{no}: {line.strip()}")
    return problems


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    builds = [Path(a) for a in argv] or find_build_dirs(root)
    if shutil.which("objdump") is None or shutil.which("nm") is None:
        print("isa-objects: FAILED (objdump/nm not found; install binutils)")
        return 1
    if not builds:
        print(f"isa-objects: FAILED (no build tree under {root / 'build'})")
        return 1
    problems = check_sources(root)
    notes = []
    for build in builds:
        found, summary = check_objects(build)
        problems += found + check_flags(build)
        notes.append(
            f"{build.name}: {summary['baseline_objects']} baseline objects clean, "
            f"{summary['isa_objects']} ISA objects whose {summary['weak_avx_functions']} weak AVX "
            "functions are not shared with baseline code"
        )
    for p in problems:
        print("  " + p)
    if problems:
        print(f"isa-objects: FAILED ({len(problems)} problems)")
        return 1
    print("isa-objects: OK (" + "; ".join(notes) + "; no -march=native)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
