"""P2's data views (bench/data/views.py): ``digits28c`` framed like MNIST and the step-matched sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config import RunConfig
from bench.data import DataConfig, base_name, load_dataset, provides
from bench.data.views import frame_like_mnist, parse_matched


def _all_images(name: str) -> torch.Tensor:
    d = load_dataset(name)
    return torch.cat([d.train.x, d.val.x, d.test.x]).reshape(-1, 28, 28)


def test_digits28c_ink_has_a_longer_side_of_20_px_and_its_centre_of_mass_at_the_centre():
    x = _all_images("digits28c")
    assert x.shape == (1797, 28, 28) and x.min() >= 0 and x.max() <= 1
    ink = x > 0
    rows, cols = ink.any(2), ink.any(1)
    idx = torch.arange(28)

    def extent(m: torch.Tensor) -> torch.Tensor:  # first to last inked pixel, inclusive
        return torch.where(m, idx, -1).amax(1) - torch.where(m, idx, 99).amin(1) + 1

    longer = torch.maximum(extent(rows), extent(cols))
    assert ((longer - 20).abs() <= 1).all(), longer.unique()  # every image
    mass = x.sum((1, 2))
    com_r, com_c = (x.sum(2) * idx).sum(1) / mass, (x.sum(1) * idx).sum(1) / mass
    assert ((com_r - 13.5).abs() <= 1).all() and ((com_c - 13.5).abs() <= 1).all()
    stretch = _all_images("digits28")  # v1's stretch fills the frame instead
    assert (stretch > 0).any(2).sum(1).float().mean() > 24


def test_digits28c_resizes_the_ink_box_as_torch_does_antialiased():
    from sklearn.datasets import load_digits

    img = torch.as_tensor(load_digits().data[:40] / 16.0, dtype=torch.float32).reshape(-1, 8, 8)
    framed = frame_like_mnist(img)
    for a, f in zip(img, framed, strict=True):  # a loop in the test only: the reference, one image at a time
        r, c = torch.nonzero(a.sum(1) > 0).flatten(), torch.nonzero(a.sum(0) > 0).flatten()
        crop = a[r[0] : r[-1] + 1, c[0] : c[-1] + 1]
        h, w = crop.shape
        size = (20, max(1, round(20 * w / h))) if h >= w else (max(1, round(20 * h / w)), 20)
        ref = torch.nn.functional.interpolate(
            crop[None, None], size=size, mode="bilinear", antialias=True, align_corners=False
        )[0, 0].clamp(0, 1)
        fr, fc = torch.nonzero(f.sum(1) > 0).flatten()[0], torch.nonzero(f.sum(0) > 0).flatten()[0]
        assert torch.allclose(f[fr : fr + size[0], fc : fc + size[1]], ref, atol=1e-5)
        assert float(f.sum()) == pytest.approx(float(ref.sum()), rel=1e-5)  # nothing cut off by the frame


def test_digits28c_shares_digits_rows_labels_and_split():
    a, b = load_dataset("digits28c"), load_dataset("digits")
    for s, t in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        assert torch.equal(s.y, t.y)
    assert provides("digits28c") == {"labels"} and a.image_shape == (1, 28, 28)


@pytest.mark.slow
def test_a_step_matched_view_is_a_stratified_random_subset_of_the_in_domain_size():
    name = "mnist5k~digits28c"
    assert parse_matched(name) == ("mnist5k", "digits28c") and parse_matched("mnist5k[0-4]") is None
    m, src, tgt = load_dataset(name), load_dataset("mnist5k"), load_dataset("digits28c")
    assert len(m.train.x) == len(tgt.train.x) < len(src.train.x)
    assert torch.equal(m.val.x, src.val.x) and torch.equal(m.test.y, src.test.y)  # only train is cut
    # every row is a source train row, none twice
    rows = {tuple(r.tolist()) for r in src.train.x[:, ::7]}
    assert all(tuple(r.tolist()) in rows for r in m.train.x[:50, ::7])
    assert len(torch.unique(m.train.x, dim=0)) == len(m.train.x)
    share = torch.bincount(m.train.y, minlength=10) - len(m.train.y) * torch.bincount(src.train.y) / len(src.train.y)
    assert share.abs().max() <= 1  # stratified: every class within one row of its share
    first = np.flatnonzero(np.isin(src.train.y.numpy(), [0]))[:20]
    assert not torch.equal(m.train.x[:20], src.train.x[first])  # at random, not a prefix
    again = load_dataset(name, DataConfig(split_seed=0, n=19999))  # another cache key, same draw
    assert torch.equal(again.train.x, m.train.x)
    other = load_dataset(name, DataConfig(split_seed=1))
    assert len(other.train.x) == len(m.train.x)


def test_a_step_matched_view_trains_for_the_in_domain_steps():
    cfg = RunConfig(prediction="transfer")
    for view, source, target in (
        ("mnist5k~digits28c", "mnist5k", "digits28c"),
        ("mnist5k[0-4]~digits[5-9]", "mnist5k[0-4]", "digits[5-9]"),
    ):
        assert base_name(view) == base_name(target)
        n, n_t = len(load_dataset(view).train.x), len(load_dataset(target).train.x)
        for profile in ("quick", "full"):
            cfg.profile = profile
            steps = cfg.resolved_epochs(view) * (n // cfg.batch_size)
            assert steps == cfg.resolved_epochs(target) * (n_t // cfg.batch_size)
        assert provides(view) == {"labels"} and load_dataset(view).n_classes == load_dataset(source).n_classes


def test_a_step_matched_view_cannot_grow_its_source_and_is_parsed_strictly():
    with pytest.raises(ValueError, match="needs 1750|cannot be larger"):
        load_dataset("digits[0-4]~mnist5k[5-9]")
    for bad in ("~digits", "mnist5k~", "a~b~c", "mnist5k~digits[0-"):
        with pytest.raises(ValueError, match="malformed"):
            parse_matched(bad)


def test_digits28c_trains_for_digits_epochs():
    cfg = RunConfig(prediction="transfer")
    for profile in ("quick", "full"):
        cfg.profile = profile
        assert cfg.resolved_epochs("digits28c") == cfg.resolved_epochs("digits") == cfg.resolved_epochs("digits28")
