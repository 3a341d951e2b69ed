"""Users' tile folders packed to ArrayRecord: formats, labels, corrupt files, errors."""

import io
import logging

import numpy as np
import pytest
from PIL import Image

from mvhybrid_jax.data import augment, folders


def write_tree(root, size=32):
  """class folders A and B with PNG, JPEG and TIFF tiles, one corrupt file, one text file."""
  rng = np.random.default_rng(0)
  arrays = {}
  for cls, names in (("A", ["x.png", "sub/y.jpg"]), ("B", ["z.tif"])):
    for name in names:
      path = root / cls / name
      path.parent.mkdir(parents=True, exist_ok=True)
      arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
      Image.fromarray(arr).save(path)
      arrays[str(path)] = arr
  (root / "B" / "broken.png").write_bytes(b"\x89PNG not really")
  (root / "B" / "notes.txt").write_text("ignored")
  return arrays


def test_pack_class_folders(tmp_path, caplog):
  arrays = write_tree(tmp_path / "tiles")
  out = str(tmp_path / "tiles.array_record")
  with caplog.at_level(logging.WARNING):
    n = folders.pack(str(tmp_path / "tiles"), out, class_folders=True)
  assert n == 3
  assert "broken.png" in caplog.text  # skipped, logged with its path
  src = folders.FolderSource(out)
  assert src.classes == ["A", "B"] and len(src) == 3
  assert [s["path"].endswith("broken.png") for s in src.skipped] == [True]
  assert src.skipped[0]["reason"].startswith("unreadable (")
  for i in range(len(src)):
    item = src[i]
    decoded = np.asarray(Image.open(io.BytesIO(item["image"])).convert("RGB"))
    assert decoded.shape == (32, 32, 3)
    assert item["label"] == (0 if "/A/" in item["path"] else 1)
    if not item["path"].endswith(".jpg"):  # lossless formats come back exactly
      np.testing.assert_array_equal(decoded, arrays[item["path"]])


def test_strict_mode_and_size_check(tmp_path):
  write_tree(tmp_path / "tiles")
  with pytest.raises(ValueError, match=r"broken\.png: unreadable \(UnidentifiedImageError"):
    folders.pack(str(tmp_path / "tiles"), str(tmp_path / "o.ar"), strict=True)
  assert not (tmp_path / "o.ar").exists() and not (tmp_path / "o.ar.incomplete").exists()
  with pytest.raises(ValueError, match=r"expected a 64x64 image, got 32x32"):
    folders.pack(str(tmp_path / "tiles"), str(tmp_path / "o.ar"), size=(64, 64))
  assert not (tmp_path / "o.ar").exists()


def test_list_file_and_pretraining_input(tmp_path):
  arrays = write_tree(tmp_path / "tiles", size=64)
  listing = tmp_path / "list.txt"
  listing.write_text("tiles/A/x.png\ntiles/B/z.tif\n")
  out = str(tmp_path / "l.ar")
  assert folders.pack(str(listing), out) == 2
  images = folders.Images(folders.FolderSource(out))
  np.testing.assert_array_equal(augment.decode(images[0]), arrays[str(tmp_path / "tiles/A/x.png")])


def test_empty_or_missing(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no images"):
    folders.pack(str(tmp_path / "empty"), str(tmp_path / "e.ar"))
  with pytest.raises(ValueError, match="does not exist"):
    folders.list_images(str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="written by folders.pack"):
    folders.FolderSource(str(tmp_path / "nothing.ar"))


def test_mhist_style_csv(tmp_path):
  rng = np.random.default_rng(1)
  (tmp_path / "images").mkdir()
  rows = []
  for i in range(6):
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        tmp_path / "images" / f"MHIST_{i}.png")
    rows.append(f"MHIST_{i}.png,{'SSA' if i % 3 == 0 else 'HP'},{'test' if i < 2 else 'train'}")
  csv = tmp_path / "annotations.csv"
  csv.write_text("Image Name,Majority Vote Label,Partition\n" + "\n".join(rows) + "\n")
  listing = folders.list_csv(str(csv), image_col="Image Name", label_col="Majority Vote Label",
                             split_col="Partition", split="train",
                             image_dir=str(tmp_path / "images"))
  assert listing[2] == ["HP", "SSA"] and len(listing[0]) == 4
  out = str(tmp_path / "mhist_train.ar")
  assert folders.pack(str(csv), out, listing=listing) == 4
  src = folders.FolderSource(out)
  assert [src[i]["label"] for i in range(4)] == [0, 1, 0, 0]  # images 2 (HP), 3 (SSA), 4, 5
  with pytest.raises(ValueError, match="no rows with Partition == 'val'"):
    folders.list_csv(str(csv), image_col="Image Name", label_col="Majority Vote Label",
                     split_col="Partition", split="val")


def test_unitopatho_style_csv(tmp_path):
  """UniToPatho: <root>/<top_label_name>/<image_id>, listed by train.csv / test.csv."""
  rng = np.random.default_rng(2)
  rows = []
  for i, label in enumerate(["NORM", "HP", "TA.LG", "TVA.HG", "HP", "NORM"]):
    (tmp_path / label).mkdir(exist_ok=True)
    name = f"{i}-B{i}.ndpi_ROI__mpp0.44_reg00{i}_crop.png"
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / label / name)
    rows.append(f"{name},{label},{i % 2}")
  (tmp_path / "train.csv").write_text("image_id,top_label_name,grade\n" + "\n".join(rows) + "\n")
  paths, labels, classes = folders.list_csv(str(tmp_path / "train.csv"), image_col="image_id",
                                            label_col="top_label_name",
                                            folder_col="top_label_name")
  assert classes == ["HP", "NORM", "TA.LG", "TVA.HG"]
  assert labels == [1, 0, 2, 3, 0, 1]
  assert paths[2] == str(tmp_path / "TA.LG" / "2-B2.ndpi_ROI__mpp0.44_reg002_crop.png")
  out = str(tmp_path / "unitopatho.ar")
  assert folders.pack(str(tmp_path), out, listing=(paths, labels, classes)) == 6
  with pytest.raises(ValueError, match="expected a column 'type_name'"):
    folders.list_csv(str(tmp_path / "train.csv"), image_col="image_id",
                     label_col="top_label_name", folder_col="type_name")


def test_an_oversized_image_is_skipped_and_named_not_fatal(tmp_path, caplog):
  """A 14000 x 14000 image (a slide region dropped among tiles) beyond PIL's own limit, and one
  over a lower max_pixels: each skipped with its reason; the rest is packed."""
  write_tree(tmp_path / "tiles")
  Image.new("1", (14000, 14000)).save(tmp_path / "tiles" / "A" / "region.png")  # 1-bit: small
  out = str(tmp_path / "o.ar")
  with caplog.at_level(logging.WARNING):
    assert folders.pack(str(tmp_path / "tiles"), out, class_folders=True) == 3
  reasons = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in folders.FolderSource(out).skipped}
  assert reasons["region.png"].startswith("too large (") and "tile_slide" in reasons["region.png"]
  assert "region.png: too large" in caplog.text
  (tmp_path / "tiles" / "A" / "region.png").unlink()
  with pytest.raises(ValueError, match=r"x\.png: too large \(32 x 32 px, more than "
                                       r"max_pixels=1023\)"):
    folders.pack(str(tmp_path / "tiles"), out, max_pixels=1023, strict=True)


def test_a_16_bit_image_is_scaled_by_its_range_not_saturated(tmp_path):
  """12-bit values in a 16-bit TIFF (0..4095): PIL's convert("RGB") clips all but 1/16 of the
  range to white; decode maps min..max onto 0..255."""
  values = np.random.default_rng(0).integers(0, 4096, (24, 24)).astype(np.uint16)
  Image.fromarray(values).save(tmp_path / "x.tif")
  data = (tmp_path / "x.tif").read_bytes()
  assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
  clipped = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
  assert (clipped == 255).mean() > 0.9  # the failure this guards against
  rgb = augment.decode(data)
  assert rgb.shape == (24, 24, 3) and rgb.dtype == np.uint8
  want = np.rint((values - values.min()) * 255.0 / (values.max() - values.min()))
  np.testing.assert_array_equal(rgb[..., 0], want)
  np.testing.assert_array_equal(rgb[..., 1], rgb[..., 2])


def test_an_empty_class_folder_is_refused(tmp_path):
  write_tree(tmp_path / "tiles")
  (tmp_path / "tiles" / "C").mkdir()
  with pytest.raises(ValueError, match=r"tiles/C: a class folder with no images"):
    folders.list_images(str(tmp_path / "tiles"), class_folders=True)
