"""Every line of README.md works as written.

Every fenced code block is extracted and run in a temporary folder: ```python blocks with
``python``, ```bash blocks line by line with ``bash -c`` (the venv's ``bin`` first on PATH,
so ``symspec`` resolves to this install), after making the inputs the lines name (a folder
``my_images/`` of ordinary photos of assorted sizes).  Files a line says it writes
(``--out``, ``-o``, ``--plot``) must exist afterwards.  Doctest blocks (``>>>``) are run by
pytest itself (``--doctest-glob=README.md``); ```text blocks are diagrams.

Only these commands are not run here, each for the reason in :data:`NOT_RUN_HERE`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent

#: Commands the test does not run, and why.  Nothing else is skipped.
NOT_RUN_HERE = {
    "pip install": "installs packages: CI (.ci/run) installs every extra from the registries "
                   "in a fresh venv before the tests",
    "jupyter-book build": "builds the book (minutes): CI (.ci/book.sh) builds it, and "
                          "tests/test_book.py checks the build",
    "python -m pytest": "runs this very suite: CI (.ci/run) runs the README's test command",
}
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_TIMEOUT = 900


def blocks() -> list[tuple[int, str, str]]:
    """``(line number, language, code)`` of every fenced block of README.md."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
            for m in _FENCE.finditer(text)]


def commands(code: str) -> list[str]:
    """The commands of a bash block: one per line (backslash continuations joined), blank
    and comment-only lines dropped."""
    lines = code.replace("\\\n", " ").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def runnable(command: str) -> tuple[str, list[str]]:
    """The parts of ``command`` (joined by ``&&``) that run here, and the reasons for the
    parts that do not."""
    parts = [p.strip() for p in command.split(" && ")]
    keep, why = [], []
    for part in parts:
        reason = next((r for k, r in NOT_RUN_HERE.items() if part.startswith(k)), None)
        (why if reason else keep).append(reason or part)
    return " && ".join(keep), why


def make_inputs(folder: Path) -> None:
    """``my_images/``: ordinary photos (scikit-learn's samples), JPEG and PNG, RGB and grey,
    of assorted sizes, none square."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = folder / "my_images"
    out.mkdir()
    china, flower = load_sample_images().images
    Image.fromarray(china).save(out / "china.jpg", quality=90)               # 427 x 640
    Image.fromarray(flower).resize((333, 250)).save(out / "flower.png")       # 250 x 333
    Image.fromarray(china[100:300, 50:450]).convert("L").save(out / "crop.jpg")  # 200 x 400


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    return env


def _written(command: str) -> list[str]:
    """The files a command names after ``--out``, ``-o`` or ``--plot``."""
    words = shlex.split(command, comments=True)
    return [b for a, b in zip(words, words[1:], strict=False) if a in ("--out", "-o", "--plot")]


BLOCKS = blocks()


def test_readme_has_blocks_of_known_kinds():
    kinds = {lang for _, lang, _ in BLOCKS}
    assert kinds <= {"bash", "python", "text"}, kinds
    assert sum(lang == "bash" for _, lang, _ in BLOCKS) >= 3
    assert sum(lang == "python" for _, lang, _ in BLOCKS) >= 3


def test_setup_is_two_commands():
    """"Set-up: two commands": 1 installs and runs the demo, 2 installs the test extras and
    runs the tests."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Set-up: two commands"):]
    lang, code = next((m.group(1), m.group(2)) for m in _FENCE.finditer(section))
    cmds = commands(code)
    assert lang == "bash" and len(cmds) == 2, cmds
    assert cmds[0].startswith("pip install") and cmds[0].endswith("symspec demo")
    assert "[test]" in cmds[1] and cmds[1].endswith("python -m pytest")


def test_not_run_here_is_only_install_build_and_the_suite():
    """What the README runs that this test does not: installs, the book build, the suite."""
    seen = set()
    for _, lang, code in BLOCKS:
        for cmd in commands(code) if lang == "bash" else []:
            run, why = runnable(cmd)
            seen.update(why)
            assert all(k not in run for k in NOT_RUN_HERE), cmd
    assert seen <= set(NOT_RUN_HERE.values())


@pytest.mark.parametrize(("line", "lang", "code"), BLOCKS,
                         ids=[f"line{ln}-{lang or 'plain'}" for ln, lang, _ in BLOCKS])
def test_readme_block_runs(line, lang, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if lang == "text":
        assert not re.search(r"^\s*(symspec|pip|python|import) ", code, re.M), \
            f"README.md:{line}: a ```text block holds commands; label it bash or python"
        return
    if lang == "python" and code.lstrip().startswith(">>>"):
        # run by pytest itself as a doctest: check that it is configured to
        pyproject = (README.parent / "pyproject.toml").read_text(encoding="utf-8")
        assert "--doctest-glob=README.md" in pyproject and '"README.md"' in pyproject
        return
    if lang == "python":
        (tmp_path / "example.py").write_text(code, encoding="utf-8")
        done = subprocess.run([sys.executable, "example.py"], capture_output=True, text=True,
                              env=_env(), timeout=_TIMEOUT)
        assert done.returncode == 0, f"README.md:{line}: python block failed:\n" \
            f"{done.stderr[-3000:]}"
        assert "Warning" not in done.stderr, f"README.md:{line}: warns:\n{done.stderr[-3000:]}"
        return
    assert lang == "bash", f"README.md:{line}: unknown block language {lang!r}"
    make_inputs(tmp_path)
    ran = 0
    for cmd in commands(code):
        run, _ = runnable(cmd)
        if not run:
            continue
        done = subprocess.run(["bash", "-c", run], capture_output=True, text=True, env=_env(),
                              timeout=_TIMEOUT)
        assert done.returncode == 0, f"README.md:{line}: `{run}` exited with " \
            f"{done.returncode}:\n{done.stderr[-3000:]}"
        assert done.stdout.strip(), f"README.md:{line}: `{run}` printed nothing"
        assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
        for name in _written(run):
            assert (tmp_path / name).stat().st_size > 0, f"`{run}` did not write {name}"
        ran += 1
    assert ran or all(runnable(c)[1] for c in commands(code))


def test_photos_psd_line_reads_assorted_sizes(tmp_path, monkeypatch):
    """The README's psd line on my_images/ (JPEG and PNG, colour and grey, 3 sizes): patches
    from every photo."""
    monkeypatch.chdir(tmp_path)
    make_inputs(tmp_path)
    line = next(c for _, lang, code in BLOCKS if lang == "bash" for c in commands(code)
                if c.startswith("symspec psd ./my_images"))
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=_env(),
                          timeout=_TIMEOUT)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "psd.npz") as z:
        want = (427 // 32) * (640 // 32) + (250 // 32) * (333 // 32) + (200 // 32) * (400 // 32)
        assert int(z["n"]) == want and z["psd"].shape == (32, 32)
