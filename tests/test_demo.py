"""``symspec demo``: its table and figure agree on photos (the DC mode is shown and scored),
the printed key says lower is better and which way KL goes, and the figure is legible."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from symspec import demo  # noqa: E402


@pytest.fixture(scope="module")
def computed():
    specs = demo.spectra()
    return specs, {label: demo.demo_table(psd) for label, psd in specs.items()}


def test_dc_part_of_w2_is_scored(computed):
    """``rel_w2_dc`` is the f = 0 mode's own W2 term; on photos it is most of the total."""
    specs, tables = computed
    for label, psd in specs.items():
        rows, res = tables[label]
        for r in rows:
            out = res[r["sampler"], r["beta_schedule"], r["steps"]].output_psd
            want = (np.sqrt(psd[0, 0]) - np.sqrt(out[0, 0])) ** 2 / psd.sum()
            np.testing.assert_allclose(r["rel_w2_dc"], want, rtol=1e-12)
            assert 0 <= r["rel_w2_dc"] <= r["rel_w2"] * (1 + 1e-12)
    photos = tables["photos"][0]
    worst = max(photos, key=lambda r: r["rel_w2"])
    assert worst["rel_w2_dc"] > 0.5 * worst["rel_w2"]  # why the f > 0 curves look fine


def test_figure_shows_dc_and_is_legible(computed):
    specs, tables = computed
    fig = demo.demo_figure(specs, tables)
    try:
        assert round(fig.get_figwidth() * fig.dpi) == 1280
        for ax in fig.axes:
            labels = [t.get_text() for t in ax.get_xticklabels()]
            assert labels[0] == "DC", labels
            f1 = 1 / 32
            left = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 1
                    and ln.get_xdata()[0] < f1 / 2]
            assert len(left) >= 4  # every curve's DC value is marked at the left edge
            assert ax.get_xlim()[0] < min(ln.get_xdata()[0] for ln in left)
        for ax in fig.axes[:2] + fig.axes[3:5]:  # output spectra: the data's DC value, exactly
            label = "power law" if ax in fig.axes[:3] else "photos"
            dc = specs[label][0, 0]
            assert any(np.isclose(ln.get_ydata()[0], dc, rtol=1e-12) for ln in ax.get_lines()
                       if len(ln.get_ydata()) == 1), label
        fig.canvas.draw()
        sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text)
                 if t.get_text() and t.get_visible()]
        px = min(sizes) * fig.dpi / 72  # the figure is 1280 px wide: pixels as shown
        assert px >= 9, px
    finally:
        plt.close(fig)


def test_printed_key(tmp_path, capsys):
    assert demo.run_demo(str(tmp_path / "d.png")) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "lower is better" in text
    assert "KL(data || output)" in text and "in nats" in text
    assert "of which DC" in text and "the DC mode holds 86% of its variance" in text
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
