"""The embedded synthetic data as tensorflow-datasets ArrayRecord datasets, written on first use.

    from mvhybrid_jax.data import datasets
    src = datasets.load("synthetic_crc_spots", config="smoke")   # {"spots": data source}
    src["spots"][0]   # {"image": PNG bytes, "counts": int32 (genes,), "slide": b"...", ...}

Datasets (configs "smoke": seconds to build; "demo": make demo's, 64 px, under a minute;
"default": about two minutes):
  synthetic_crc_classes  labelled patches of the nine classes, split "train" / "test"
  synthetic_crc_spots    spots of slides with expression counts, coordinates, study, patient
                         and the slide's survival (time, event), one split "spots"
Images are stored as encoded PNG bytes (tfds' Image feature needs TensorFlow to encode), read
with tfds' random-access data sources: no TensorFlow anywhere. tfds writes into a temporary
directory and renames it when complete, so an interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from mvhybrid_jax.data import records, synthetic

DATA_DIR_ENV = "MVHYBRID_DATA_DIR"


def default_data_dir() -> str:
  """$MVHYBRID_DATA_DIR, else ~/.cache/mvhybrid_jax/tensorflow_datasets."""
  return os.environ.get(DATA_DIR_ENV) or os.path.join(
      os.path.expanduser("~"), ".cache", "mvhybrid_jax", "tensorflow_datasets")


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
  n_studies: int = 4
  slides_per_study: int = 2
  grid: tuple[int, int] = (8, 8)
  patch_size: int = 224
  n_genes: int = 50
  per_class_per_study: int = 40  # labelled patches, each split
  seed: int = 0


CONFIGS = [
    SyntheticConfig(name="smoke", description="seconds to build: 64 px, 4 studies x 2 slides of "
                    "4 x 4 spots", slides_per_study=2, grid=(4, 4), patch_size=64,
                    per_class_per_study=4),
    SyntheticConfig(name="demo", description="make demo's: 64 px, 4 studies x 3 slides of 6 x 6 "
                    "spots, 24 labelled patches per class and study in each split",
                    slides_per_study=3, grid=(6, 6), patch_size=64, per_class_per_study=24),
    SyntheticConfig(name="default", description="224 px patches, 4 studies x 3 slides of 12 x 12",
                    slides_per_study=3, grid=(12, 12), patch_size=224, per_class_per_study=40),
]


class SyntheticCrcClasses(tfds.core.GeneratorBasedBuilder):
  """Patches dominated by one of the nine NCT-CRC-HE classes, from every study."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = CONFIGS

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(), dtype=np.object_),
        "label": tfds.features.ClassLabel(names=list(synthetic.CLASSES)),
        "study": tfds.features.Text(),
    }))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(self.builder_config.seed),
            "test": self._generate_examples(self.builder_config.seed + 1000)}

  def _generate_examples(self, seed):
    cfg = self.builder_config
    studies = synthetic.make_studies(cfg.n_studies, cfg.seed)
    rng = np.random.default_rng(seed)
    for s, study in enumerate(studies):
      for label in range(len(synthetic.CLASSES)):
        for i in range(cfg.per_class_per_study):
          image = synthetic.class_patch(rng, label, study, cfg.patch_size)
          yield f"{s}_{label}_{i}", {"image": records.encode_png(image), "label": label, "study": study.name}


class SyntheticCrcSpots(tfds.core.GeneratorBasedBuilder):
  """Slides of spots with expression; the gene names are in the metadata ("genes")."""

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {"1.1.0": "smoke: two slides per study, so that slide-level random folds "
                            "differ from leave-one-study-out",
                   "1.2.0": "spots dominated by one or two classes (synthetic.SPOT_SHARPNESS)"}
  BUILDER_CONFIGS = CONFIGS

  def _info(self):
    cfg = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),
            "counts": tfds.features.Tensor(shape=(cfg.n_genes,), dtype=np.int32),
            "coords": tfds.features.Tensor(shape=(2,), dtype=np.int32),
            "slide": tfds.features.Text(),
            "study": tfds.features.Text(),
            "patient": tfds.features.Text(),
            "time": tfds.features.Scalar(dtype=np.float32),
            "event": tfds.features.Scalar(dtype=np.bool_),
        }),
        metadata=tfds.core.MetadataDict(
            genes=list(synthetic.make_gene_model(cfg.n_genes, seed=cfg.seed).names)))

  def _split_generators(self, dl_manager):
    return {"spots": self._generate_examples()}

  def _generate_examples(self):
    cfg = self.builder_config
    slides, _ = synthetic.make_cohort(cfg.n_studies, cfg.slides_per_study, cfg.grid,
                                      cfg.patch_size, cfg.n_genes, cfg.seed)
    for slide in slides:
      for k in range(len(slide.patches)):
        yield f"{slide.id}_{k}", {
            "image": records.encode_png(slide.patches[k]), "counts": slide.counts[k].astype(np.int32),
            "coords": slide.coords[k].astype(np.int32), "slide": slide.id,
            "study": slide.study, "patient": slide.patient, "time": slide.time,
            "event": slide.event}


BUILDERS = {"synthetic_crc_classes": SyntheticCrcClasses,
            "synthetic_crc_spots": SyntheticCrcSpots}


def builder(name: str, config: str = "smoke", data_dir: str | None = None):
  if name not in BUILDERS:
    raise ValueError(f"name: unknown dataset {name!r}; expected one of {sorted(BUILDERS)}")
  names = [c.name for c in CONFIGS]
  if config not in names:
    raise ValueError(f"config: unknown {config!r} for {name}; expected one of {names}")
  return BUILDERS[name](data_dir=data_dir or default_data_dir(), config=config,
                        file_format="array_record")


def load(name: str, config: str = "smoke", data_dir: str | None = None):
  """Random-access data sources by split, building the dataset first if it is not there."""
  b = builder(name, config, data_dir)
  b.download_and_prepare()
  return b.as_data_source()
