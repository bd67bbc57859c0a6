"""The ``symspec`` command line: derive, response, demo and its error contract."""

import json
import os
import re

import numpy as np
import pytest
import sympy as sp

from symspec.cli import main
from symspec.schedules import training_alphas_cumprod
from symspec.symbolic.symbols import lam, level


def run(capsys, *argv):
    """Exit code, stdout and stderr of ``symspec ARGV`` (argparse errors exit via SystemExit)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("symspec: error: "), err
    assert "Traceback" not in err
    assert re.search(pattern, err), err


def parse(text):
    """A printed formula back to SymPy, with symspec's symbols (``lambda`` is a keyword)."""
    names = {"lam": lam, **{f"alphabar_{k}": level(k, "vp") for k in ("t", "p", "1", "2")}}
    return sp.parse_expr(re.sub(r"\blambda\b", "lam", text), local_dict=names)


def test_derive_prints_the_map_and_closed_form(capsys):
    code, out, err = run(capsys, "derive", "ddpm")
    assert code == 0 and err == ""
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert {"gain", "noise_var", "transfer", "output_psd", "A", "Q", "C"} <= set(lines)
    a2 = level("2", "vp")
    telescoped = sp.sqrt(a2) * lam / (a2 * lam + 1 - a2)  # book theory/ddpm.md: DDPM over 2 steps
    assert sp.simplify(parse(lines["transfer"]) - telescoped) == 0


def test_derive_json(capsys):
    code, out, _ = run(capsys, "derive", "ddim", "--eta", "0.5", "--steps", "1", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["sampler"] == "ddim" and d["options"] == {"eta": 0.5} and d["steps"] == 1
    ab_t, ab_p = level("t", "vp"), level("p", "vp")
    want = 0.25 * (1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p)  # DDIM sigma^2 with eta = 1/2
    point = {ab_t: 0.3, ab_p: 0.8}
    assert float(parse(d["noise_var"]).subs(point)) == pytest.approx(float(want.subs(point)),
                                                                    rel=1e-14)


def test_derive_latex(capsys):
    code, out, _ = run(capsys, "derive", "ddim", "--latex")
    assert code == 0 and r"\sqrt" in out and r"\frac" in out


def test_response_json_matches_the_telescoped_ddpm_transfer(capsys):
    code, out, _ = run(capsys, "response", "--sampler", "ddpm", "--psd", "white:8", "--steps",
                       "5", "--json")
    assert code == 0
    d = json.loads(out)
    ab = training_alphas_cumprod(1000)[800]  # leading spacing, 5 of 1000 steps: t = 800 first
    assert d["sampler"] == "ddpm" and d["steps"] == 5
    assert len(d["frequency"]) == len(d["transfer"]) == len(d["output_psd"]) > 1
    np.testing.assert_allclose(d["data_psd"], 0.25, rtol=1e-15)
    np.testing.assert_allclose(d["transfer"], np.sqrt(ab) * 0.25 / (ab * 0.25 + 1 - ab),
                               rtol=1e-12)


def test_response_table_and_npy_output(capsys, tmp_path):
    target = tmp_path / "out.npy"
    code, out, _ = run(capsys, "response", "--psd", "powerlaw:2:8", "--steps", "4", "--eta",
                       "0.3", "--out", str(target))
    assert code == 0
    assert out.splitlines()[1].split() == ["|f|", "data", "output", "ratio", "transfer"]
    arr = np.load(target)
    assert arr.shape == (8, 8) and np.all(arr > 0)
    assert list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_demo_writes_a_png_and_json(capsys, tmp_path):
    png = tmp_path / "demo.png"
    code, out, err = run(capsys, "demo", "--json", "--out", str(png))
    assert code == 0 and err == ""
    tables = json.loads(out)  # {spectrum: [row, ...]}
    rows = [r for t in tables.values() for r in t]
    assert rows and all(r["kl_per_mode"] >= 0 and r["rel_w2"] >= 0 for r in rows)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("argv, pattern", [
    (["derive", "nosuch"], "unknown sampler 'nosuch'"),
    (["derive", "ddim", "--option", "eta:0.5"], "option must look like name="),
    (["derive", "ddim", "--option", "eta=__import__('os')"], "option must look like name="),
    (["derive", "ddim", "--option", "etta=1"], "has no option 'etta'"),
    (["derive", "ddpm", "--steps", "0"], "steps must be an int from 1 to 4"),
    (["response", "--steps", "0"], "num_inference_steps must be an int"),
    (["response", "--psd", "/nonexistent/psd.npy"], "no such file"),
    (["response", "--psd", "powerlaw:x"], "no such file"),
    (["response", "--steps", "abc"], "invalid int value: 'abc'"),
    (["response", "--spacing", "karras"], "invalid choice: 'karras'"),
    (["nosuchcommand"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, pattern):
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, err, pattern)


def test_bad_psd_files(capsys, tmp_path):
    neg = tmp_path / "neg.npy"
    np.save(neg, -np.ones((4, 4)))
    assert_one_line_error(*run(capsys, "response", "--psd", str(neg))[::2], r"must be >= 0")
    nokey = tmp_path / "nokey.npz"
    np.savez(nokey, other=np.ones(4))
    assert_one_line_error(*run(capsys, "response", "--psd", str(nokey))[::2], "no array named")
    junk = tmp_path / "junk.npy"
    junk.write_text("not an array\n" * 3)
    assert_one_line_error(*run(capsys, "response", "--psd", str(junk))[::2], "cannot read")


def test_unwritable_output_leaves_nothing(capsys, tmp_path):
    target = tmp_path / "missing_dir" / "demo.png"
    code, _, err = run(capsys, "response", "--psd", "white:4", "--steps", "2", "--out",
                       str(target))
    assert_one_line_error(code, err, "does not exist")
    assert list(tmp_path.iterdir()) == []


class _HalfWriter:
    """A file whose write puts down half the data, then fails (a full disk)."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("failure", ["write", "rename"])
def test_failed_write_keeps_the_old_file_and_no_partial_one(capsys, tmp_path, monkeypatch,
                                                            failure):
    import symspec.cli as cli

    target = tmp_path / "out.npy"
    target.write_bytes(b"old")
    if failure == "write":
        real = os.fdopen
        monkeypatch.setattr(cli.os, "fdopen", lambda fd, mode: _HalfWriter(real(fd, mode)))
    else:
        def refuse(src, dst):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(cli.os, "replace", refuse)
    code, _, err = run(capsys, "response", "--psd", "white:4", "--steps", "2", "--out",
                       str(target))
    assert_one_line_error(code, err, "No space left on device")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
