"""The ``symspec`` command line: derive, response, demo and its error contract."""

import argparse
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symspec
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
    (["derive", "nosuch"], "invalid choice: 'nosuch'"),
    (["derive", "ddim", "--option", "eta:0.5"], "option must look like name="),
    (["derive", "ddim", "--option", "eta=__import__('os')"], "option must look like name="),
    (["derive", "ddim", "--option", "etta=1"], "has no option 'etta'"),
    (["derive", "ddpm", "--steps", "0"], "steps must be an int from 1 to 4"),
    (["response", "--steps", "0"], "num_inference_steps must be an int"),
    (["response", "--psd", "/nonexistent/psd.npy"], "no such file"),
    (["response", "--psd", "powerlaw:x"], "bad model parameters.*ALPHA is not a number"),
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
    assert_one_line_error(*run(capsys, "response", "--psd", str(junk))[::2],
                          "junk.npy: not a NumPy .npy file")


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


# -- all outputs or none, checked before the computation -----------------------------------
def _no_computation(monkeypatch):
    """Make every command's computation fail loudly: the output check must come first."""
    import symspec.cli as cli
    import symspec.demo as demo

    def computed(*a, **k):
        raise AssertionError("computed before checking the outputs")
    monkeypatch.setattr(cli, "parse_psd", computed)
    monkeypatch.setattr(cli, "_psd_estimate", computed)
    monkeypatch.setattr(demo, "spectra", computed)


@pytest.mark.parametrize("argv, option", [
    (["psd", "STACK", "--out", "DIR"], "--out"),
    (["psd", "STACK", "--out", "OLD", "--plot", "DIR"], "--plot"),
    (["design", "--out", "DIR"], "--out"),
    (["design", "--out", "OLD", "--plot", "DIR"], "--plot"),
    (["response", "--out", "DIR"], "--out"),
    (["compare", "--plot", "DIR"], "--plot"),
    (["diagnose", "--plot", "DIR"], "--plot"),
    (["demo", "--out", "DIR"], "--out"),
])
def test_outputs_are_checked_before_computing(capsys, tmp_path, monkeypatch, argv, option):
    (tmp_path / "dir.npz").mkdir()  # a folder, named like an output
    old = tmp_path / "old.npz"
    old.write_bytes(b"old")
    np.save(tmp_path / "stack.npy", np.zeros((3, 4)))
    _no_computation(monkeypatch)
    names = {"DIR": tmp_path / "dir.npz", "OLD": old, "STACK": tmp_path / "stack.npy"}
    code, _, err = run(capsys, *[str(names.get(a, a)) for a in argv])
    assert_one_line_error(code, err, f"{option}: .*dir.npz is a folder, not a file")
    assert old.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.npz", "old.npz", "stack.npy"]


def test_psd_keeps_existing_out_when_the_plot_cannot_be_renamed(capsys, tmp_path,
                                                                 monkeypatch):
    """The second rename fails after the first succeeded: the first is put back."""
    import symspec._io as io_mod

    np.save(tmp_path / "s.npy", np.random.default_rng(0).standard_normal((6, 4, 4)))
    out, png = tmp_path / "out.npz", tmp_path / "p.png"
    out.write_bytes(b"old")
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if Path(dst) == png:
            raise OSError(28, "No space left on device", str(src))
        return real(src, dst)
    monkeypatch.setattr(io_mod.os, "replace", replace)
    code, _, err = run(capsys, "psd", str(tmp_path / "s.npy"), "--out", str(out), "--plot",
                       str(png))
    assert_one_line_error(code, err, r"--plot: cannot write .*p.png: No space left")
    assert "symspec-tmp" not in err  # the target is named, never a temporary file
    assert out.read_bytes() == b"old" and not png.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "s.npy"]


def test_same_file_twice_is_refused(capsys, tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((3, 4)))
    target = str(tmp_path / "o.npz")
    code, _, err = run(capsys, "psd", str(tmp_path / "s.npy"), "--out", target, "--plot", target)
    assert_one_line_error(code, err, "name the same file")


# -- the output contract: links, FIFOs, modes ----------------------------------------------
RESPONSE = ["response", "--psd", "white:4", "--steps", "2", "--out"]


def test_out_through_a_symlink_writes_its_target(capsys, tmp_path):
    target, link = tmp_path / "real.npy", tmp_path / "link.npy"
    target.write_bytes(b"old")
    link.symlink_to(target)
    assert run(capsys, *RESPONSE, str(link))[0] == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert np.load(target).shape == (4, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npy", "real.npy"]


def test_out_to_a_fifo_is_written_directly(capsys, tmp_path):
    import threading

    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        code, _, err = run(capsys, *RESPONSE, str(fifo))
    finally:
        if reader.is_alive():  # the command never opened it: unblock the reader
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
    assert code == 0, err
    assert got and got[0][:6] == b"\x93NUMPY"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not replaced by a file
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.npy"]


def test_out_keeps_the_mode_and_hard_links(capsys, tmp_path):
    private = tmp_path / "private.npy"
    private.write_bytes(b"old")
    private.chmod(0o600)
    assert run(capsys, *RESPONSE, str(private))[0] == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and np.load(private).shape == (4, 4)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    a.write_bytes(b"old")
    os.link(a, b)
    assert run(capsys, *RESPONSE, str(a))[0] == 0
    assert os.path.samefile(a, b) and np.load(b).shape == (4, 4)


def test_out_as_a_folder_is_one_line(capsys, tmp_path):
    assert_one_line_error(*run(capsys, *RESPONSE, str(tmp_path))[::2], "is a folder, not a file")


def test_out_with_a_255_byte_name(capsys, tmp_path):
    target = tmp_path / ("x" * 251 + ".npy")
    assert len(target.name.encode()) == 255
    assert run(capsys, *RESPONSE, str(target))[0] == 0
    assert np.load(target).shape == (4, 4) and list(tmp_path.iterdir()) == [target]


# -- damaged input, extreme values, interrupts: one line ------------------------------------
def _npz(d):
    np.savez(d / "t.npz", psd=np.ones((4, 4)))
    (d / "t.npz").write_bytes((d / "t.npz").read_bytes()[:60])


def _big_npy(d):
    text = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }"
    text += " " * (128 - 10 - len(text) - 1) + "\n"
    (d / "big.npy").write_bytes(b"\x93NUMPY\x01\x00" + bytes([len(text), 0]) + text.encode())


def _schedule(text):
    return lambda d: (d / "s.json").write_text(text)


@pytest.mark.parametrize("setup, argv, pattern", [
    (_npz, ["response", "--psd", "t.npz"], r"--psd: t.npz: not a valid .npz file"),
    (_big_npy, ["response", "--psd", "big.npy"], r"shape \(100000, 100000\).* limit"),
    (lambda d: (d / "r.npy").write_bytes(np.random.default_rng(2).bytes(200)),
     ["response", "--psd", "r.npy"], "r.npy: not a NumPy .npy file"),
    (lambda d: np.savez(d / "k.npz", other=np.ones(4)), ["response", "--psd", "k.npz"],
     r"^symspec: error: --psd: k.npz: has no array named 'psd'"),
    (None, ["response", "--psd", "powerlaw:2:100000"], "SIZE 100000 is out of range"),
    (None, ["response", "--psd", "white:-3"], "bad model parameters in 'white:-3'"),
    (None, ["response", "--psd", "powerlaw:1e3"], "bad model parameters.*ALPHA 1000"),
    (None, ["response", "--psd", "powerlaw"], "bad model parameters.*ALPHA is missing"),
    (_schedule("[" * 100_000 + "]" * 100_000), ["compare", "--schedule", "s.json", "--steps",
                                                "1"], "nested too deeply"),
    (_schedule('{"space": "ve", "start": [1e200, 1], "end": [1, 0], "init_var": null}'),
     ["compare", "--schedule", "s.json", "--steps", "2"], r"sigma values must be <= 1e\+150"),
    (lambda d: (d / "s.json").write_bytes(b"\xff\xfe\x00"),
     ["diagnose", "--schedule", "s.json"], "s.json is not text"),
    (None, ["diagnose", "--schedule", "missing.json"], "cannot read missing.json"),
    (lambda d: np.save(d / "c.npy", np.ones((4, 4), complex)), ["response", "--psd", "c.npy"],
     "c.npy: expected real numbers, found dtype complex128"),
])
def test_damaged_input_is_one_line(capsys, tmp_path, monkeypatch, setup, argv, pattern):
    monkeypatch.chdir(tmp_path)
    if setup:
        setup(tmp_path)
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, pattern)
    assert "pickle" not in err and err.count("--psd") <= 1 and "cannot read" not in err[30:] \
        or "missing.json" in err


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    import symspec.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setitem(cli.COMMANDS, "derive", (cli.add_derive, interrupted))
    code, out, err = run(capsys, "derive", "ddim")
    assert code == 130 and err == "symspec: interrupted\n" and out == ""
    assert "130 when interrupted" in " ".join(cli.build_parser().format_help().split())


@pytest.mark.parametrize("exc", [KeyError("k"), TypeError("bug"), AttributeError("bug")])
def test_program_bugs_are_not_reported_as_bad_input(capsys, monkeypatch, exc):
    import symspec.cli as cli

    def buggy(args):
        raise exc
    monkeypatch.setitem(cli.COMMANDS, "derive", (cli.add_derive, buggy))
    with pytest.raises(type(exc)):
        cli.main(["derive", "ddim"])


def test_diagnose_with_zero_bins_prints_no_warning(capsys, tmp_path):
    psd = np.full((8, 8), 0.25)
    psd[0, 3] = psd[0, 5] = 0.0  # a ring keeps some power: the diagnosis is defined
    np.save(tmp_path / "z.npy", psd)
    code, out, err = run(capsys, "diagnose", "--psd", str(tmp_path / "z.npy"), "--steps", "2")
    assert code == 0 and err == "" and "total" in out


# -- sampler options are checked where they are set ------------------------------------------
@pytest.mark.parametrize("argv, pattern", [
    (["response", "--sampler", "ddpm", "--option", "variance=bogus", "--steps", "1"],
     "variance must be one of 'fixed_small', 'fixed_large', got 'bogus'"),
    (["derive", "ddim", "--eta", "inf"], "eta must be a finite number >= 0, got inf"),
    (["derive", "ddim", "--eta", "nan"], "eta must be a finite number >= 0"),
    (["derive", "ddim", "--eta", "-0.5"], "eta must be a finite number >= 0, got -0.5"),
    (["derive", "ddim", "--option", "eta=x"], "eta must be a real number"),
    (["response", "--eta", "1.5", "--steps", "4"], r"--eta 1.5 is too large for step 3 .*"
                                                   r"DDIM needs eta <= 1 there"),
    (["derive", "lms", "--option", "order=5"], "order must be 1, 2, 3 or 4, got 5"),
    (["derive", "lms", "--option", "order=true"], "order must be 1, 2, 3 or 4, got True"),
    (["derive", "dpmpp", "--option", "sde=true", "--option", "solver_order=3"],
     "solver_order must be 1, 2 or 3 \\(1 or 2 with sde=True\\), got 3"),
    (["derive", "unipc", "--option", "solver_type=bh3"], "solver_type 'bh1' or 'bh2'"),
    (["derive", "ve_reverse_diffusion", "--option", "last_noise=1"], "last_noise must be true"),
])
def test_bad_sampler_options_are_refused(capsys, argv, pattern):
    assert_one_line_error(*run(capsys, *argv)[::2], pattern)


def test_sampler_checks_in_the_library():
    import symspec

    with pytest.raises(ValueError, match="variance must be one of"):
        symspec.DDPM(variance="bogus")
    with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
        symspec.DDIM(eta=float("inf"))
    assert symspec.DDIM(eta=np.float32(0.5)).opts == {"eta": np.float32(0.5)}
    schedule = symspec.Schedule.from_alpha_bar([0.1, 0.5, 1.0])
    with pytest.raises(ValueError, match="eta=1.5 is too large for the DDIM step"):
        symspec.sample(symspec.DDIM(eta=1.5), schedule, np.ones(4), n=4)


# -- hygiene: one command table, choices from the library, help, version -----------------------
def test_commands_table_and_choices_come_from_the_library():
    import symspec
    import symspec.cli as cli
    from symspec._checks import SPACES
    from symspec.design import DIVERGENCES
    from symspec.schedules import BETA_SCHEDULES, SPACINGS

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)
    want = {"--space": SPACES, "--divergence": tuple(DIVERGENCES), "--spacing": SPACINGS,
            "--beta-schedule": BETA_SCHEDULES, "--base": BETA_SCHEDULES,
            "--sampler": tuple(sorted(symspec.SAMPLERS)),
            "sampler": tuple(sorted(symspec.SAMPLERS))}
    seen = set()
    for name, p in sub.choices.items():
        assert p.description, name
        assert issubclass(p.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            assert a.help, (name, a.dest)
            key = a.option_strings[0] if a.option_strings else a.dest
            if (name, key) == ("reality", "--sampler"):  # the samplers real runs support
                import symspec.reality

                assert tuple(a.choices) == symspec.reality._SAMPLERS
            elif key in want:
                assert tuple(a.choices) == tuple(want[key]), (name, key)
                seen.add(key)
    assert seen == set(want)
    assert "(default: ddim)" in sub.choices["response"].format_help()


def test_version(capsys):
    import symspec

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"symspec {symspec.__version__}"


def test_prev_rule_is_stride_only_for_ddim():
    import symspec
    from symspec.cli import prev_rule
    from symspec.symbolic.engine import sampler

    @sampler(space="vp", name="ddim")
    def impostor(c, x):
        return x

    assert prev_rule(symspec.DDIM) == prev_rule(symspec.DDIM(eta=0.5)) == "stride"
    assert {prev_rule(s) for n, s in symspec.SAMPLERS.items() if n != "ddim"} == {"chained"}
    assert prev_rule(impostor) == "chained"  # by the step function, never the name


def test_response_of_euler_on_linspace_is_chained(capsys):
    import symspec
    from symspec.schedules import diffusers_schedule, inference_timesteps
    from symspec.spectra import radial_profile

    code, out, _ = run(capsys, "response", "--sampler", "euler", "--psd", "white:4", "--steps",
                       "7", "--spacing", "linspace", "--json")
    assert code == 0
    ab = training_alphas_cumprod(1000)
    sched = diffusers_schedule(ab, inference_timesteps(7, 1000, "linspace"), "chained")
    want = radial_profile(symspec.spectral_response(symspec.EULER, sched,
                                                    np.full((4, 4), 0.25)).output_psd)[1]
    np.testing.assert_allclose(json.loads(out)["output_psd"], want, rtol=1e-12)


def test_compare_ranks_every_design_with_its_initial_kl(capsys):
    # issue 16/17: the chained, non-chained and free-start designs beside every heuristic
    assert main(["compare", "--psd", "powerlaw:2:8", "--sampler", "ddim", "--steps", "4",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    score, kl, chained = out["objective"], out["initial_kl"], out["chained"]
    assert {"designed", "designed, non-chained", "designed, free start"} <= set(score)
    assert chained["designed"] and not chained["designed, non-chained"]
    assert kl["designed"] <= 0.01 * (1 + 1e-9) and kl["designed, non-chained"] <= 0.01 * (1 + 1e-9)
    assert score["designed, non-chained"] <= score["designed"]
    assert score["designed, free start"] <= score["designed"]


def test_design_unchained_and_start_rules(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["design", "--psd", "powerlaw:2:8", "--sampler", "ddpm", "--steps", "3",
                 "--unchained", "--start", "free", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "(start, end) of each step" in text and "start: free" in text
    s = symspec.Schedule.from_json(out.read_text())
    assert not s.chained and s.meta["start_rule"] == "free"
    code, _, err = run(capsys, "design", "--psd", "powerlaw:2:8", "--start", "clean", "--out",
                       str(out))
    assert_one_line_error(code, err, "expected 'honest', 'free' or a number")


def test_design_and_compare_report_progress_on_stderr(tmp_path, capsys):
    """Long work says what it is doing: one progress line per phase of the search on stderr
    (stdout keeps the result alone), from design_schedule's progress= callback."""
    seen = []
    symspec.design_schedule(symspec.DDPM, symspec.spectra.power_law((8, 8)), 3,
                            progress=seen.append)
    n = len(symspec.design.optimise.STARTS)
    assert f"designing: start 1/{n} ({symspec.design.optimise.STARTS[0]}), screening" in seen
    assert any(m.startswith("designing: start ") and m.endswith("to convergence") for m in seen)
    code, out, err = run(capsys, "design", "--psd", "powerlaw:2:8", "--sampler", "ddpm",
                         "--steps", "3", "--unchained", "--out", str(tmp_path / "s.json"))
    assert code == 0 and "designing" not in out
    assert f"designing: start {n}/{n}" in err
    assert "designing: both levels of every step (non-chained)" in err
    code, out, err = run(capsys, "compare", "--psd", "powerlaw:2:8", "--sampler", "ddim",
                         "--steps", "3")
    assert code == 0 and "designing" not in out
    for i, label in enumerate(("designed", "designed, non-chained", "designed, free start"), 1):
        assert f"{label} ({i}/3): designing: start 1/{n}" in err


def test_response_and_diagnose_tables_of_a_colour_spectrum(tmp_path, capsys):
    # issue 15: the channel axis of `psd --color` was taken as a third frequency axis
    from symspec.spectra import radial_profile

    rng = np.random.default_rng(0)
    np.save(tmp_path / "stack.npy", rng.standard_normal((40, 8, 8, 3)))
    out = tmp_path / "psd.npz"
    assert main(["psd", str(tmp_path / "stack.npy"), "--color", "--out", str(out)]) == 0
    capsys.readouterr()
    psd = np.load(out)["psd"]
    assert psd.shape == (8, 8, 3)
    assert main(["response", "--psd", str(out), "--steps", "3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    f, data = radial_profile(psd.sum(axis=-1))
    np.testing.assert_allclose(got["frequency"], f)
    np.testing.assert_allclose(got["data_psd"], data)
    assert main(["diagnose", "--psd", str(out), "--steps", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["frequency"]) == f.size


def _images(folder: Path, n: int = 3, size: int = 32) -> list[str]:
    """Grey PNGs of smooth random fields, steeper spectra for later images."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    names = []
    for i in range(n):
        x = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size)))
                                 / (1 + 30 * f) ** (0.5 + 0.4 * i)))
        x = (x - x.min()) / (x.max() - x.min()) * 255
        names.append(f"img{i}.png")
        Image.fromarray(x.astype(np.uint8)).save(folder / names[-1])
    return names


def test_psd_per_image_and_the_design_of_the_stack(tmp_path, capsys):
    # issue 14, item 4: one spectrum per image, then one schedule per spectrum
    from symspec.design import design_schedule
    from symspec.spectra.estimate import SpectrumAccumulator
    from symspec.spectra.readers import cut_image, read_image

    names = _images(tmp_path / "imgs")
    out = tmp_path / "stack.npz"
    code, text, _ = run(capsys, "psd", str(tmp_path / "imgs"), "--per-image", "--size", "8",
                        "--out", str(out))
    assert code == 0 and "3 images, 16-16 patches each" in text
    with np.load(out) as f:
        stack, files, n = f["psd"], list(f["files"]), f["n"]
    assert stack.shape == (3, 8, 8) and files == names and n.tolist() == [16, 16, 16]
    acc = SpectrumAccumulator(2)
    acc.update(cut_image(read_image(tmp_path / "imgs" / names[1]), 8, "patches"))
    np.testing.assert_allclose(stack[1], acc.psd(), rtol=1e-12)  # image 1's own spectrum
    sched = tmp_path / "schedules.json"
    code, text, err = run(capsys, "design", "--psd", str(out), "--steps", "4", "--sampler",
                          "ddpm", "--out", str(sched))
    assert code == 0 and "3 designs" in text and "designing: 3/3 spectra done" in err
    doc = json.loads(sched.read_text())
    assert doc["files"] == names and len(doc["schedules"]) == 3
    for psd, s in zip(stack, doc["schedules"], strict=True):
        got = symspec.Schedule.from_json(json.dumps(s))
        want = design_schedule(symspec.DDPM, psd, 4).meta["objective"]
        assert got.meta["objective"] <= want * (1 + 1e-6)
    # --stack: any .npy whose first axis runs over spectra; --json
    np.save(tmp_path / "s.npy", stack[:2])
    code, text, _ = run(capsys, "design", "--psd", str(tmp_path / "s.npy"), "--stack",
                        "--steps", "3", "--out", str(tmp_path / "s.json"), "--json")
    got = json.loads(text)
    assert code == 0 and [d["file"] for d in got["designs"]] == ["psd[0]", "psd[1]"]
    assert len(got["designs"][0]["levels"]) == 4


@pytest.mark.parametrize("argv, pattern", [
    (["psd", "{d}/imgs", "--per-image", "--out", "{d}/x.npz"], r"--per-image needs --size"),
    (["psd", "{d}/imgs", "--per-image", "--size", "8", "--mode", "crop", "--out",
      "{d}/x.npz"], r"--per-image needs --mode patches"),
    (["psd", "{d}/imgs", "--per-image", "--size", "32", "--out", "{d}/x.npz"],
     r"img0.png: one 32x32 patch; a spectrum needs at least 2"),
    (["psd", "{d}/imgs", "--per-image", "--size", "8", "--fit", "ar1", "--out", "{d}/x.npz"],
     r"--fit applies to one spectrum"),
    (["design", "--psd", "powerlaw:2", "--stack", "--out", "{d}/s.json"],
     r"--stack: --psd must be a .npy or .npz file"),
    (["design", "--psd", "{d}/nan.npy", "--stack", "--out", "{d}/s.json"],
     r"--psd .*nan.npy: psd\[1\] must be finite"),
    (["design", "--psd", "{d}/flat.npy", "--stack", "--out", "{d}/s.json"],
     r"a stack needs a first axis over the spectra"),
])
def test_per_image_and_stack_errors_are_one_line(capsys, tmp_path, argv, pattern):
    _images(tmp_path / "imgs", n=1)
    bad = np.ones((3, 4, 4))
    bad[1, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "flat.npy", np.ones(4))
    code, _, err = run(capsys, *(a.format(d=tmp_path) for a in argv))
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "s.json").exists()


# -- design and compare for a data model (--model) ---------------------------------------
def _blobs(path):
    """Samples of two well-separated 2-D clusters, as a .npy file."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (400, 2)) + np.repeat([[-3.0, 0.0], [3.0, 1.0]], 200, axis=0)
    np.save(path, x)
    return str(path)


def test_design_for_a_model_writes_the_schedule(capsys, tmp_path):
    data = _blobs(tmp_path / "x.npy")
    code, out, err = run(capsys, "design", "--model", "gmm:2", "--data", data, "--steps", "4",
                         "--samples", "200", "--out", str(tmp_path / "s.json"), "--plot",
                         str(tmp_path / "s.png"))
    assert code == 0, err
    s = symspec.Schedule.from_json((tmp_path / "s.json").read_text())
    assert s.steps == 4 and s.meta["terms"].keys() == {"w2", "mode_kl", "fd", "mmd"}
    assert "mode_kl" in out and "best default" in out and (tmp_path / "s.png").exists()
    assert "designing on the model: evaluation" in err  # progress on stderr


def test_compare_for_a_model_ranks_both_designs_on_held_out_seeds(capsys, tmp_path):
    data = _blobs(tmp_path / "x.npy")
    code, out, err = run(capsys, "compare", "--model", "gmm:2", "--data", data, "--steps", "3",
                         "--samples", "200", "--n", "200", "--json", "--plot",
                         str(tmp_path / "f.png"))
    assert code == 0, err
    got = json.loads(out)
    names = [r["name"] for r in got["rows"]]
    assert names[:2] == ["spectral design", "model design"] and len(names) == 8
    assert got["seed"] == 1000 and (tmp_path / "f.png").exists()


@pytest.mark.parametrize("argv, pattern", [
    (["design", "--model", "gmm:2", "--data", "{x}", "--unchained", "--out", "{d}/s.json"],
     r"--model designs keep the honest start"),
    (["design", "--model", "gmm:2", "--data", "{x}", "--terms", "fid=1", "--out",
      "{d}/s.json"], r"unknown term 'fid'"),
    (["design", "--model", "gmm", "--data", "{x}", "--out", "{d}/s.json"],
     r"--model must be gmm:K or empirical"),
    (["compare", "--model", "gmm:2", "--data", "{x}", "--sampler", "euler"],
     r"--model compares on diffusers' DDIM \(eta 0\) and DDPM"),
])
def test_model_design_errors_are_one_line(capsys, tmp_path, argv, pattern):
    x = _blobs(tmp_path / "x.npy")
    code, _, err = run(capsys, *(a.format(d=tmp_path, x=x) for a in argv))
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "s.json").exists()
