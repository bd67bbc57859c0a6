"""Readers and ``symspec psd``: files written in tmp_path, read back, streamed, and refused."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

from symspec import spectra as S
from symspec.cli import main, parse_psd
from symspec.spectra import readers as R

RNG = np.random.default_rng(7)


def write_pngs(folder, arrays):
    """Save uint8 arrays as PNG (lossless); return what the readers should see in [-1, 1]."""
    folder.mkdir(exist_ok=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"img{i:02d}.png")
    return [a / 127.5 - 1.0 for a in arrays]


def uint8(shape):
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def test_read_png_grey_rgb_and_16bit(tmp_path):
    grey, rgb = uint8((5, 7)), uint8((5, 7, 3))
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(R.read_image(tmp_path / "g.png"), grey / 127.5 - 1)
    np.testing.assert_array_equal(R.read_image(tmp_path / "c.png", color=True), rgb / 127.5 - 1)
    ref = np.asarray(Image.fromarray(rgb).convert("L"), float)  # Pillow's own grey levels
    np.testing.assert_array_equal(R.read_image(tmp_path / "c.png"), ref / 127.5 - 1)
    deep = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_allclose(R.read_image(tmp_path / "d.png"), deep / 32767.5 - 1, atol=1e-15)


def test_read_jpeg(tmp_path):
    """JPEG is lossy: a smooth image comes back within a few grey levels."""
    ramp = np.add.outer(np.arange(32), np.arange(32)).astype(np.uint8) * 4
    Image.fromarray(ramp).save(tmp_path / "r.jpg", quality=95)
    assert np.abs(R.read_image(tmp_path / "r.jpg") - (ramp / 127.5 - 1)).max() < 4 / 127.5


@pytest.mark.parametrize(("dtype", "scale", "offset"), [(np.int16, 32768, 0), (np.uint8, 128, 128),
                                                         (np.int32, 2 ** 31, 0)])
def test_read_wav_int(tmp_path, dtype, scale, offset):
    info = np.iinfo(dtype)
    data = RNG.integers(info.min, info.max, (100, 2), dtype=dtype, endpoint=True)
    wavfile.write(tmp_path / "a.wav", 8000, data)
    rate, x = R.read_wav(tmp_path / "a.wav")
    assert rate == 8000 and x.shape == (100, 2)
    np.testing.assert_array_equal(x, (data.astype(float) - offset) / scale)
    assert x.min() >= -1 and x.max() <= 1


def test_read_wav_float(tmp_path):
    data = RNG.uniform(-1, 1, 50).astype(np.float32)
    wavfile.write(tmp_path / "f.wav", 44100, data)
    np.testing.assert_array_equal(R.read_wav(tmp_path / "f.wav")[1], data.astype(float))


def test_folder_whole_images_equal_stack(tmp_path):
    seen = write_pngs(tmp_path / "imgs", [uint8((6, 9)) for _ in range(5)])
    acc = R.folder_spectrum(tmp_path / "imgs")
    assert acc.n == 5
    np.testing.assert_allclose(acc.psd(), S.estimate_psd(np.stack(seen)), rtol=1e-12)


def test_folder_crop_and_patches_equal_stack(tmp_path):
    """Mixed sizes with crop/patches: equal to cutting the arrays by hand."""
    arrays = [uint8((12, 16)), uint8((9, 10)), uint8((20, 8))]
    seen = write_pngs(tmp_path / "imgs", arrays)
    crops = [a[(a.shape[0] - 8) // 2:][:8, (a.shape[1] - 8) // 2:][:, :8] for a in seen]
    np.testing.assert_allclose(R.folder_spectrum(tmp_path / "imgs", 8, mode="crop").psd(),
                               S.estimate_psd(np.stack(crops)), rtol=1e-12)
    patches = [a[i:i + 4, j:j + 4] for a in seen
               for i in range(0, a.shape[0] - 3, 3) for j in range(0, a.shape[1] - 3, 3)]
    acc = R.folder_spectrum(tmp_path / "imgs", 4, mode="patches", stride=3)
    assert acc.n == len(patches)
    np.testing.assert_allclose(acc.psd(), S.estimate_psd(np.stack(patches)), rtol=1e-12)


def test_folder_color_equals_channel_psd(tmp_path):
    seen = write_pngs(tmp_path / "imgs", [uint8((8, 8, 3)) for _ in range(4)])
    acc = R.folder_spectrum(tmp_path / "imgs", color=True)
    np.testing.assert_allclose(acc.psd(), S.channel_psd(np.stack(seen)), atol=1e-12)


def test_stack_spectrum_npy_and_npz(tmp_path):
    """More samples than one streaming chunk: equal to the one-shot estimate."""
    x = RNG.standard_normal((R._CHUNK * 2 + 5, 6, 5))
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", samples=x, other=np.zeros(3))
    for name in ("x.npy", "x.npz"):
        acc = R.stack_spectrum(tmp_path / name)
        assert acc.n == len(x)
        np.testing.assert_allclose(acc.psd(), S.estimate_psd(x), rtol=1e-10)


def test_progress_line(tmp_path, capsys):
    write_pngs(tmp_path / "imgs", [uint8((4, 4)) for _ in range(3)])
    R.folder_spectrum(tmp_path / "imgs", progress=True)
    assert "imgs: images: 3/3" in capsys.readouterr().err


# -- bad input ----------------------------------------------------------------------------
def test_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no PNG or JPEG"):
        R.folder_spectrum(tmp_path / "empty")
    write_pngs(tmp_path / "mixed", [uint8((6, 6)), uint8((6, 7))])
    with pytest.raises(ValueError, match=r"img01.png: image is 6x7 .*crop"):
        R.folder_spectrum(tmp_path / "mixed")
    with pytest.raises(ValueError, match=r"img00.png: image is 6x6, smaller than 8x8"):
        R.folder_spectrum(tmp_path / "mixed", 8, mode="crop")
    write_pngs(tmp_path / "one", [uint8((6, 6))])
    with pytest.raises(ValueError, match="one: at least 2 samples"):
        R.folder_spectrum(tmp_path / "one")
    with pytest.raises(ValueError, match="not a folder"):
        R.folder_spectrum(tmp_path / "nope")


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n\0\0"])
def test_corrupt_image(tmp_path, content):
    write_pngs(tmp_path / "imgs", [uint8((6, 6))])
    (tmp_path / "imgs" / "bad.png").write_bytes(content)
    with pytest.raises(ValueError, match="bad.png: cannot read image"):
        R.folder_spectrum(tmp_path / "imgs")


def test_truncated_jpeg(tmp_path):
    Image.fromarray(uint8((64, 64))).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="t.jpg: cannot read image"):
        R.read_image(tmp_path / "t.jpg")


def test_bad_stacks(tmp_path):
    x = np.zeros((3, 4))
    x[2, 1] = np.inf
    np.save(tmp_path / "inf.npy", x)
    with pytest.raises(ValueError, match=r"inf.npy \(samples 0..2\) has 1 NaN or infinite"):
        R.stack_spectrum(tmp_path / "inf.npy")
    np.save(tmp_path / "one.npy", np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"one.npy: expected a stack of at least 2"):
        R.load_stack(tmp_path / "one.npy")
    np.save(tmp_path / "dims.npy", np.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"dims.npy: expected samples of shape"):
        R.stack_spectrum(tmp_path / "dims.npy")
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(ValueError, match=r"two.npz: expected an array named 'samples'"):
        R.load_stack(tmp_path / "two.npz")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.npy: not a NumPy .npy file"):
        R.load_stack(tmp_path / "junk.npy")
    np.save(tmp_path / "c.npy", np.zeros((3, 4), complex))
    with pytest.raises(ValueError, match="c.npy: expected real numbers"):
        R.load_stack(tmp_path / "c.npy")


@pytest.mark.filterwarnings("ignore::scipy.io.wavfile.WavFileWarning")
def test_bad_wav(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ValueError, match="bad.wav: cannot read WAV"):
        R.read_wav(tmp_path / "bad.wav")


# -- the command line ---------------------------------------------------------------------
def test_cli_psd_folder_roundtrip(tmp_path, capsys):
    photos = S.photo_patches(12, 40)[:6, :10] + 1.0  # natural images: a power law fits
    seen = write_pngs(tmp_path / "imgs", [np.round(a * 127.5).astype(np.uint8) for a in photos])
    out, png = tmp_path / "psd.npz", tmp_path / "psd.png"
    assert main(["psd", str(tmp_path / "imgs"), "--mode", "crop", "--size", "8", "--out",
                 str(out), "--plot", str(png), "--fit", "powerlaw"]) == 0
    with np.load(out) as z:
        assert int(z["n"]) == 6
        np.testing.assert_allclose(z["psd"], S.estimate_psd(np.stack(
            [a[1:9, 2:10] for a in seen])), rtol=1e-12)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "powerlaw: A = " in capsys.readouterr().out
    assert parse_psd(str(out)).shape == (8, 8)
    assert main(["response", "--psd", str(out), "--steps", "3"]) == 0


def test_cli_psd_wav_and_stack(tmp_path):
    x = RNG.standard_normal(4000) * 0.1
    wavfile.write(tmp_path / "a.wav", 8000, x.astype(np.float32))
    assert main(["psd", str(tmp_path / "a.wav"), "--size", "64", "--out",
                 str(tmp_path / "w.npz")]) == 0
    with np.load(tmp_path / "w.npz") as z:
        np.testing.assert_allclose(z["psd"], S.welch_psd(x.astype(np.float32), 64), rtol=1e-9)
        assert int(z["rate"]) == 8000 and int(z["n"]) == len(S.welch_segments(x, 64))
    np.save(tmp_path / "s.npy", RNG.standard_normal((20, 4, 4, 3)))
    assert main(["psd", str(tmp_path / "s.npy"), "--color", "--out",
                 str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as z:
        np.testing.assert_allclose(z["psd"], S.channel_psd(np.load(tmp_path / "s.npy")),
                                   atol=1e-12)


def test_cli_psd_photos_of_any_size_default_patches(tmp_path, capsys, monkeypatch):
    """``symspec psd ./my_images --size 32`` on ordinary photos of assorted sizes (JPEG and
    PNG, RGB, none 32x32): the default is non-overlapping 32x32 patches, said in the
    summary, and equal to cutting them by hand."""
    from sklearn.datasets import load_sample_images

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_images").mkdir()
    photos = load_sample_images().images
    sizes = [(427, 640), (250, 333), (97, 130)]
    for i, (photo, (h, w)) in enumerate(zip(photos * 2, sizes, strict=False)):
        Image.fromarray(photo).resize((w, h)).save(tmp_path / "my_images" / f"p{i}.png")
    seen = [R.read_image(p) for p in sorted((tmp_path / "my_images").iterdir())]
    assert main(["psd", "./my_images", "--size", "32", "--out", "psd.npz"]) == 0
    out = capsys.readouterr().out
    patches = [a[i:i + 32, j:j + 32] for a in seen
               for i in range(0, a.shape[0] - 31, 32) for j in range(0, a.shape[1] - 31, 32)]
    assert f"from {len(patches)} 32x32 patches, stride 32 (no overlap), of 3 images" in out
    assert "--mode patches, the default with --size" in out
    with np.load(tmp_path / "psd.npz") as z:
        assert int(z["n"]) == len(patches)
        np.testing.assert_allclose(z["psd"], S.estimate_psd(np.stack(patches)), rtol=1e-10)
    assert main(["psd", "./my_images", "--size", "32", "--mode", "crop", "--out",
                 "crop.npz"]) == 0
    assert "central 32x32 crops (--mode crop) of 3 images" in capsys.readouterr().out
    assert int(np.load(tmp_path / "crop.npz")["n"]) == 3


def test_cli_psd_help_states_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["psd", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Default with --size: patches" in text and "without --size: whole images" in text


def test_image_smaller_than_size(tmp_path, capsys):
    """An image smaller than --size: one line naming the file, --size and --mode."""
    write_pngs(tmp_path / "imgs", [uint8((40, 50)), uint8((20, 30))])
    with pytest.raises(R.ImageTooSmallError, match="img01.png: image is 20x30, smaller than "
                       r"32x32.*at most 20") as info:
        R.folder_spectrum(tmp_path / "imgs", 32, mode="patches")
    assert (info.value.shape, info.value.size, info.value.mode) == ((20, 30), 32, "patches")
    for extra in ([], ["--mode", "crop"]):
        assert main(["psd", str(tmp_path / "imgs"), "--size", "32", *extra, "--out",
                     str(tmp_path / "o.npz")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "img01.png: image is 20x30, smaller than --size 32" in err
        assert f"--mode {extra[1] if extra else 'patches'} cuts" in err
        assert "use --size 20 or less" in err
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize(("setup", "args", "match"), [
    (lambda d: (d / "imgs").mkdir(), ["imgs"], "no PNG or JPEG"),
    (lambda d: write_pngs(d / "imgs", [uint8((6, 6)), uint8((7, 6))]), ["imgs"], "img01.png"),
    (lambda d: (write_pngs(d / "imgs", [uint8((6, 6))]), (d / "imgs/z.png").write_bytes(b"x")),
     ["imgs"], "z.png: cannot read image"),
    (lambda d: write_pngs(d / "imgs", [uint8((6, 6))] * 2), ["imgs", "--mode", "crop"],
     "--size is required"),
    (lambda d: write_pngs(d / "imgs", [uint8((6, 6))] * 2),
     ["imgs", "--mode", "crop", "--size", "4", "--stride", "2"], "--stride applies to --mode "
     "patches only"),
    (lambda d: np.save(d / "n.npy", np.full((3, 4), np.nan)), ["n.npy"], "n.npy"),
    (lambda d: np.save(d / "s.npy", np.zeros((3, 4))), ["s.npy", "--out", "x.npy"],
     "--out must end in .npz"),
    (lambda d: np.save(d / "s.npy", np.zeros((3, 4))), ["s.npy", "--plot", "no/p.png"],
     "--plot: the folder of no/p.png does not exist"),
    (lambda d: (d / "a.txt").write_text("1"), ["a.txt"], "a.txt: expected a folder"),
    (lambda d: wavfile.write(d / "a.wav", 8000, np.zeros(10, np.int16)), ["a.wav"],
     "--size .* is required"),
])
def test_cli_psd_errors(tmp_path, capsys, monkeypatch, setup, args, match):
    """One line on stderr, exit 2, and no output file at all."""
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    argv = ["psd", *args] + ([] if "--out" in args else ["--out", "out.npz"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("symspec: error:")
    assert re.search(match, err), err
    assert not any(p.name.startswith(("out", ".out", "x.npy")) for p in tmp_path.iterdir())


# -- damaged files: one ValueError naming the file, nothing allocated from a lying header ---
def _npy_header_only(path, shape, descr="<f8"):
    """A 128-byte .npy file whose header declares ``shape`` and that holds no data."""
    d = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    d += " " * (128 - 10 - len(d) - 1) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(d).to_bytes(2, "little") + d.encode())


def test_truncated_npz_is_refused_naming_it(tmp_path):
    np.savez(tmp_path / "t.npz", samples=np.zeros((4, 8)))
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"t.npz: not a valid .npz file"):
        R.load_stack(tmp_path / "t.npz")
    with pytest.raises(ValueError, match=r"t.npz: not a valid .npz file"):
        R.load_array(tmp_path / "t.npz", "psd")


def test_lying_npy_header_is_refused_before_allocating(tmp_path, monkeypatch):
    _npy_header_only(tmp_path / "big.npy", (100000, 100000))
    assert (tmp_path / "big.npy").stat().st_size == 128

    def no_read(*a, **k):
        raise AssertionError("the data was read")
    monkeypatch.setattr(np, "fromfile", no_read)
    with pytest.raises(ValueError, match=r"big.npy: truncated: its header declares shape "
                                         r"\(100000, 100000\)"):
        R.load_array(tmp_path / "big.npy")
    with pytest.raises(ValueError, match=r"more than the limit of 100"):
        R.load_array(tmp_path / "big.npy", max_values=100)
    _npy_header_only(tmp_path / "obj.npy", (3,), "|O")
    with pytest.raises(ValueError, match="obj.npy: expected real numbers, found dtype object"):
        R.load_array(tmp_path / "obj.npy")


def test_random_bytes_npy_gives_no_pickle_advice(tmp_path):
    (tmp_path / "r.npy").write_bytes(np.random.default_rng(1).bytes(300))
    with pytest.raises(ValueError, match="r.npy: not a NumPy .npy file") as info:
        R.load_stack(tmp_path / "r.npy")
    assert "pickle" not in str(info.value)


def test_wav_cut_in_header_or_data_is_refused(tmp_path):
    wavfile.write(tmp_path / "a.wav", 8000, np.zeros(1000, np.int16))
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "h.wav").write_bytes(data[:20])  # inside the fmt chunk: struct.error
    (tmp_path / "d.wav").write_bytes(data[:500])  # inside the data: scipy only warns
    with pytest.raises(ValueError, match="h.wav: cannot read WAV"):
        R.read_wav(tmp_path / "h.wav")
    with pytest.raises(ValueError, match="d.wav: cannot read WAV .*EOF"):
        R.read_wav(tmp_path / "d.wav")


def test_oversized_samples_are_refused(tmp_path):
    _npy_header_only(tmp_path / "wide.npy", (2, R.MAX_SAMPLE_VALUES + 1), "|u1")
    with open(tmp_path / "wide.npy", "r+b") as f:  # make the file really hold the data
        f.truncate(128 + 2 * (R.MAX_SAMPLE_VALUES + 1))
    with pytest.raises(ValueError, match="wide.npy: samples of shape .* larger than the limit"):
        R.load_stack(tmp_path / "wide.npy", mmap=True)


# -- samples far from 1: scaled, not overflowed or flushed to zero ------------------------
@pytest.mark.parametrize("scale", [1e150, 1e-150, 1e-100, 1e120])
def test_estimates_are_scale_safe(scale):
    x = RNG.standard_normal((40, 8, 8))
    want = S.estimate_psd(x)
    np.testing.assert_allclose(S.estimate_psd(x * scale) / scale**2, want, rtol=1e-12)
    xc = RNG.standard_normal((40, 8, 3))
    np.testing.assert_allclose(S.channel_psd(xc * scale) / scale**2, S.channel_psd(xc),
                               rtol=1e-10, atol=1e-12 * S.channel_psd(xc).max())
    flat = x.reshape(40, -1)
    np.testing.assert_allclose(S.pca_spectrum(flat * scale)[:10] / scale**2,
                               S.pca_spectrum(flat)[:10], rtol=1e-10)


def test_batches_of_different_scales_merge_exactly():
    x = RNG.standard_normal((60, 16))
    x[30:] *= 1e6  # the second batch raises the scale: the first batch's sums are rescaled
    acc = S.SpectrumAccumulator(1)
    acc.update(x[:30] * 1e140)
    acc.update(x[30:] * 1e140)
    np.testing.assert_allclose(acc.psd() / 1e280, S.estimate_psd(x), rtol=1e-10)


@pytest.mark.parametrize("scale, pattern", [(1e160, "beyond float64's range"),
                                            (1e-170, "below float64's normal range")])
def test_spectra_outside_float64_are_refused(scale, pattern):
    x = RNG.standard_normal((5, 8, 8)) * scale
    with pytest.raises(ValueError, match=pattern):
        S.estimate_psd(x)
    with pytest.raises(ValueError, match=pattern):
        S.pca_spectrum(x.reshape(5, -1))


def test_complex_samples_are_refused():
    with pytest.raises(ValueError, match="must be real numbers, got complex"):
        S.estimate_psd(np.ones((3, 4), complex))
    with pytest.raises(ValueError, match="must be real numbers, got complex"):
        S.channel_psd(np.ones((3, 4, 2), complex))


@pytest.mark.parametrize(("setup", "args", "match"), [
    (lambda d: np.save(d / "h.npy", RNG.standard_normal((5, 8, 8)) * 1e160), ["h.npy"],
     "beyond float64's range"),
    (lambda d: np.save(d / "t.npy", RNG.standard_normal((5, 8, 8)) * 1e-170), ["t.npy"],
     "below float64's normal range"),
    (lambda d: (np.savez(d / "z.npz", samples=np.zeros((4, 8))),
                (d / "z.npz").write_bytes((d / "z.npz").read_bytes()[:100])), ["z.npz"],
     r"z.npz: not a valid .npz file"),
    (lambda d: _npy_header_only(d / "big.npy", (100000, 100000)), ["big.npy"],
     r"big.npy: truncated"),
    (lambda d: (d / "r.npy").write_bytes(b"\x00" * 300), ["r.npy"], "not a NumPy .npy file"),
    (lambda d: (wavfile.write(d / "a.wav", 8000, np.zeros(1000, np.int16)),
                (d / "a.wav").write_bytes((d / "a.wav").read_bytes()[:20])),
     ["a.wav", "--size", "8"], "a.wav: cannot read WAV"),
    (lambda d: (wavfile.write(d / "a.wav", 8000, np.zeros(1000, np.int16)),
                (d / "a.wav").write_bytes((d / "a.wav").read_bytes()[:500])),
     ["a.wav", "--size", "8"], "a.wav: cannot read WAV .*EOF"),
    (lambda d: write_pngs(d / "imgs", [np.full((8, 8), 100 + 20 * i, np.uint8)
                                       for i in range(3)]),
     ["imgs", "--fit", "powerlaw"], "fit has no finite optimum"),
])
def test_cli_psd_damaged_or_extreme_input(tmp_path, capsys, monkeypatch, setup, args, match):
    """One line (no warnings before it, no advice from numpy), exit 2, no output."""
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    assert main(["psd", *args, "--out", "out.npz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("symspec: error:"), err
    assert re.search(match, err) and "pickle" not in err, err
    assert not (tmp_path / "out.npz").exists()
