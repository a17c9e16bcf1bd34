"""The ``image-folder`` loader on small generated folder trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import invbench.data.image_folder as folder_mod
from invbench.data import load_protocol
from invbench.errors import ConfigError, DataError
from invbench.registry import DATASETS


def load(**kw: object):  # noqa: ANN201
    return DATASETS.get("image-folder")(**{"data_dir": None, "resolution": None, **kw})


def solid(mode: str, size: tuple[int, int], value: object) -> Image.Image:
    return Image.new(mode, size, value)


@pytest.fixture()
def mixed_tree(tmp_path: Path) -> Path:
    """alice: 2 RGB PNGs + 1 JPEG; bob: 2 grayscale images; carol: nested RGB + gray; junk."""
    root = tmp_path / "faces"
    for name in ("alice", "bob", "carol/sub", ".hidden"):
        (root / name).mkdir(parents=True)
    solid("RGB", (40, 30), (255, 0, 0)).save(root / "alice" / "a1.png")
    solid("RGBA", (20, 50), (0, 255, 0, 128)).save(root / "alice" / "a2.PNG")
    solid("RGB", (64, 48), (0, 0, 255)).save(root / "alice" / "a3.jpg", quality=95)
    solid("L", (33, 17), 51).save(root / "bob" / "b1.png")
    solid("L", (16, 16), 204).save(root / "bob" / "b2.bmp")
    solid("RGB", (10, 10), (255, 255, 0)).save(root / "carol" / "sub" / "c1.ppm")
    solid("L", (12, 9), 255).save(root / "carol" / "c0.pgm")
    (root / "bob" / "notes.txt").write_text("not an image")
    (root / "bob" / ".thumb.png").write_bytes(b"corrupt, but hidden")
    (root / ".hidden" / "x.png").write_bytes(b"corrupt, but hidden")
    (root / "loose.png").write_bytes(b"not in a class folder: ignored")
    return root


def test_mixed_rgb_and_gray(mixed_tree: Path) -> None:
    data = load(data_dir=mixed_tree, resolution=16)
    assert data.name == "image-folder"
    assert data.class_names == ("alice", "bob", "carol")
    assert tuple(data.x.shape) == (7, 3, 16, 16) and data.x.dtype == torch.float32
    assert data.y.tolist() == [0, 0, 0, 1, 1, 2, 2]
    mean = data.x.mean(dim=(2, 3))
    torch.testing.assert_close(mean[0], torch.tensor([1.0, 0.0, 0.0]))  # red PNG
    torch.testing.assert_close(mean[1], torch.tensor([0.0, 1.0, 0.0]))  # alpha dropped
    torch.testing.assert_close(mean[2], torch.tensor([0.0, 0.0, 1.0]), atol=0.02, rtol=0)  # JPEG
    torch.testing.assert_close(mean[3], torch.full((3,), 0.2))  # gray replicated
    torch.testing.assert_close(mean[4], torch.full((3,), 0.8))
    torch.testing.assert_close(mean[5], torch.ones(3))  # carol/c0.pgm sorts before sub/
    torch.testing.assert_close(mean[6], torch.tensor([1.0, 1.0, 0.0]))  # nested sub-folder
    assert data.source == str(mixed_tree.resolve())


def test_all_gray_gives_one_channel(tmp_path: Path) -> None:
    for cls in ("p", "q"):
        (tmp_path / cls).mkdir()
    solid("L", (20, 20), 0).save(tmp_path / "p" / "1.png")
    solid("1", (9, 7), 1).save(tmp_path / "p" / "2.png")
    arr16 = np.full((10, 10), 65535, dtype=np.uint16)
    Image.fromarray(arr16).save(tmp_path / "q" / "1.png")  # 16-bit grayscale
    pal = solid("P", (8, 8), 0)
    pal.putpalette([v for g in range(256) for v in (g, g, g)])
    pal.save(tmp_path / "q" / "2.gif")
    data = load(data_dir=tmp_path, resolution=8)
    assert tuple(data.x.shape) == (4, 1, 8, 8)
    torch.testing.assert_close(data.x.mean(dim=(1, 2, 3)), torch.tensor([0.0, 1.0, 1.0, 0.0]))


def test_center_crop_then_default_resolution(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    wide = np.zeros((10, 30), dtype=np.uint8)
    wide[:, 10:20] = 255  # only the central square is white
    Image.fromarray(wide).save(tmp_path / "a" / "wide.png")
    Image.fromarray(wide.T.copy()).save(tmp_path / "b" / "tall.tif")
    data = load(data_dir=tmp_path)
    assert tuple(data.x.shape) == (2, 1, 64, 64)
    assert float(data.x.min()) == 1.0  # the black sides were cropped away


def test_many_images_keep_order(tmp_path: Path) -> None:
    """Enough images for the threaded path; each image's value encodes its position."""
    expected = []
    for cls, count in (("a", 40), ("b", 30)):
        (tmp_path / cls).mkdir()
        for i in range(count):
            value = (len(expected) * 3) % 256
            solid("L", (6, 6), value).save(tmp_path / cls / f"{i:03d}.png")
            expected.append(value)
    assert len(expected) >= folder_mod._PARALLEL_FROM
    data = load(data_dir=tmp_path, resolution=4)
    got = torch.round(data.x[:, 0, 0, 0] * 255).long().tolist()
    assert got == expected
    assert torch.bincount(data.y).tolist() == [40, 30]


def test_load_protocol(mixed_tree: Path) -> None:
    p = load_protocol("image-folder", data_dir=mixed_tree, resolution=8, seed=0)
    assert p.private_classes == (0, 1) and p.public_classes == (2,)
    assert p.class_names == ("alice", "bob") and p.image_shape == (3, 8, 8)
    assert len(p.private_train) + len(p.private_test) == 5 and len(p.public) == 2


def test_needs_data_dir() -> None:
    with pytest.raises(ConfigError, match="--data-dir"):
        load()


@pytest.mark.parametrize("bad", [2, 1024, 16.0])
def test_bad_resolution(mixed_tree: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match="resolution"):
        load(data_dir=mixed_tree, resolution=bad)


def _err(path: Path, match: str) -> str:
    with pytest.raises(DataError, match=match) as err:
        load(data_dir=path)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_folder_errors(tmp_path: Path) -> None:
    assert str(tmp_path / "nope") in _err(tmp_path / "nope", "does not exist")
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    assert str(f) in _err(f, "not a directory")
    flat = tmp_path / "flat"
    flat.mkdir()
    solid("L", (4, 4), 0).save(flat / "a.png")
    (flat / ".git").mkdir()
    msg = _err(flat, "no sub-folders")
    assert str(flat) in msg and "1 image files directly inside" in msg


def test_empty_subfolder_named(mixed_tree: Path) -> None:
    (mixed_tree / "dave").mkdir()
    (mixed_tree / "dave" / "readme.txt").write_text("no images here")
    assert str(mixed_tree / "dave") in _err(mixed_tree, "has no images")


@pytest.mark.parametrize(
    "content", [b"definitely not a PNG", b"truncate"], ids=["garbage", "truncated"]
)
def test_corrupt_image_named(mixed_tree: Path, content: bytes) -> None:
    bad = mixed_tree / "bob" / "b3.png"
    if content == b"truncate":
        solid("L", (64, 64), 7).save(bad)
        bad.write_bytes(bad.read_bytes()[:60])
    else:
        bad.write_bytes(content)
    assert str(bad) in _err(mixed_tree, "cannot read image")


def test_float_image_out_of_range(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((5, 5), 0.5, np.float32)).save(tmp_path / cls / "ok.tif")
    assert tuple(load(data_dir=tmp_path, resolution=4).x.shape) == (2, 1, 4, 4)
    bad = tmp_path / "b" / "hot.tif"
    Image.fromarray(np.full((5, 5), 3.0, np.float32)).save(bad)
    assert str(bad) in _err(tmp_path, r"must hold values in \[0, 1\]")
