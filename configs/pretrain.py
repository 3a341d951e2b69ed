"""DINOv2 pretraining of any registered backbone on colorectal patches: one recipe for all six.

  python train.py --config=configs/pretrain.py:mvhybrid --workdir=runs/mvhybrid   # the paper's run
  python train.py --config=configs/pretrain.py:vit_12 --workdir=runs/vit_12       # a baseline
  python train.py --config=configs/pretrain.py:vit_12,smoke --workdir=/tmp/smoke  # CPU, seconds
  python train.py --config=configs/pretrain.py:mvhybrid,demo --workdir=runs/demo  # CPU, minutes
  python train.py --config=configs/pretrain.py:mvhybrid --config.data.path=shards/ ...

The argument is BACKBONE[,VARIANT] (a name of mvhybrid_jax.models; variant smoke or demo).
configs/mvhybrid_crc.py is this config's mvhybrid (the paper's run under its own name), and
configs/<backbone>_crc.py this config's other backbones.

config.model: the backbone's name and the settings this recipe chooses (dtype; the rest None:
the registry's defaults in mvhybrid_jax/models, the only place a backbone's sizes live). Any
setting can be given: --config.model.dim=512 --config.model.depth=12.

data.path: ArrayRecord shards of tiles (python -m mvhybrid_jax.data.prepare SLIDES shards/,
data.folders.pack or wsi.tile_slide): one file, a folder of them, a glob or a list file, read as
one source; empty means the embedded synthetic patches (data.synthetic_config "smoke" or
"default").
"""

import ml_collections

# mvhybrid_jax.models.names(), in the order of the paper's table (tests/test_configs.py: the same).
BACKBONES = ("mvhybrid", "vit_12", "vit_24", "vim_einfft", "hydra_einfft", "hydra_hybrid")
VARIANTS = ("smoke", "demo")
# Backbone settings a config may give; None leaves them to the registry.
MODEL_KEYS = {int: ("dim", "depth", "num_heads", "patch_size", "d_state", "head_dim",
                    "chunk_size"),
              float: ("drop_path_rate",), str: ("scan_impl",)}
# The backbone sizes of the CPU variants, shared by every backbone, and what Hydra's need more.
SIZES = {"smoke": dict(dim=32, depth=2, num_heads=2),
         "demo": dict(dim=32, depth=2, num_heads=2, patch_size=8)}
SMALL_EXTRA = {"hydra_einfft": dict(d_state=16, head_dim=32),
               "hydra_hybrid": dict(d_state=16, head_dim=32)}


def parse_arg(arg: str | None) -> tuple[str, str]:
  """"BACKBONE[,VARIANT]" -> (backbone, variant), as big_vision's configs read their argument."""
  backbone, _, variant = (arg or "").partition(",")
  if backbone not in BACKBONES:
    raise ValueError(f"config argument {arg!r}: expected BACKBONE[,VARIANT] with BACKBONE one of "
                     f"{list(BACKBONES)}, got {backbone!r}")
  if variant and variant not in VARIANTS:
    raise ValueError(f"config variant: expected '', 'smoke' or 'demo', got {variant!r}")
  return backbone, variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  backbone, variant = parse_arg(arg)
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = ml_collections.ConfigDict(dict(name=backbone, remat=False, dtype="bfloat16"))
  for kind, keys in MODEL_KEYS.items():
    for key in keys:
      c.model[key] = ml_collections.config_dict.placeholder(kind)
  c.heads = ml_collections.ConfigDict(dict(prototypes=65536, hidden=2048, bottleneck=256))
  # Records that cannot be decoded are skipped and named (workdir/skipped_records.jsonl); more
  # than max_skipped_fraction of the data stops the run with their list.
  c.data = ml_collections.ConfigDict(dict(path="", synthetic_config="default", num_workers=8,
                                         max_skipped_fraction=0.01))
  # Any field of data.augment.MultiCropConfig. Blur probability per crop (global 1, global 2,
  # locals): what the paper's run did, 0 / 0.9 / 0.5 (DINOv2's GaussianBlur(p) blurs with
  # probability 1 - p, and the config said 1.0 / 0.1 / 0.5); the stated intent is
  # --config.crops.blur_p="(1.0, 0.1, 0.5)". No solarisation in the paper (DINOv2's own: 0.2).
  c.crops = ml_collections.ConfigDict(dict(global_size=256, local_size=112, n_local=8,
                                           blur_p=(0.0, 0.9, 0.5), solarize_p=0.0))
  # Parameters and optimiser state split over all devices (ZeRO-3, as DINOv2's FSDP); batches over
  # data x fsdp. Rules: (regex on the state path, "fsdp" | "replicate"); see
  # mvhybrid_jax/sharding.py.
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1))
  c.sharding = ml_collections.ConfigDict(dict(rules=[(".*", "fsdp")], min_size=2**14))
  c.batch_size = 1536          # global: 64 per GPU on 24 GPUs
  c.steps_per_epoch = 493
  c.epochs = 200
  c.base_lr = 0.002            # scaled by sqrt(batch_size / 1024)
  c.final_lr = 1e-6
  c.warmup_epochs = 10
  c.weight_decay = (0.04, 0.4)
  c.teacher_momentum = (0.992, 1.0)
  c.teacher_temp = (0.04, 0.06)
  c.teacher_temp_warmup_epochs = 30
  c.student_temp = 0.1
  # Teacher centring: "sinkhorn_knopp" (DINOv2, 3 iterations over the global batch) or "softmax"
  # (DINO: minus a running mean of the teacher's logits, center_momentum). Sinkhorn-Knopp makes
  # an image's target depend on the other images of its batch: fine at 1,536, noise at 8.
  c.centering = "sinkhorn_knopp"
  c.center_momentum = 0.9
  c.koleo_weight = 0.1
  c.koleo_scope = "device"     # nearest neighbours within each device's batch, as DINOv2; "global"
  c.ibot_masked_only = True    # iBOT heads on the masked patches only (DINOv2); False: all patches
  c.clip = 3.0
  c.clip_scope = "module"      # backbone, DINO head, iBOT head clipped apart (DINOv2); "global"
  c.patch_embed_lr = 0.2
  c.layer_decay = 1.0          # layer-wise lr decay: off in the paper's run
  c.freeze_last_layer_epochs = 1
  c.log_every = 50
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3
  if variant:
    c.model.update(**SIZES[variant], **SMALL_EXTRA.get(backbone, {}), dtype="float32")
    c.data.update(synthetic_config=variant, num_workers=0)
    c.crops.update(global_size=64, local_size=32, n_local=2)
  if variant == "smoke":  # a tiny backbone on the synthetic data, seconds on a CPU (tests)
    c.heads.update(prototypes=256, hidden=64, bottleneck=32)
    c.batch_size, c.steps_per_epoch, c.epochs = 8, 10, 2
    c.warmup_epochs, c.teacher_temp_warmup_epochs, c.freeze_last_layer_epochs = 1, 1, 0
    c.log_every, c.checkpoint_every = 5, 10
  elif variant == "demo":
    # A small backbone pretrained in about 2 minutes on 2 CPU cores (make demo). Where a batch
    # of 8 needs other settings than one of 1,536 (measured in benchmarks/RESULTS.md, "What
    # makes the demo learn"): softmax centring, since Sinkhorn-Knopp's targets at a batch of 8
    # say more about the batch than about the image; no KoLeo, since an image's nearest
    # neighbour among 8 is mostly one of its own class, and spreading those apart cost kNN
    # accuracy (and hid a collapse); 8 px patches, so a 64 px crop has 8 x 8 tokens (a 224 px
    # one 14 x 14); few prototypes; a peak lr of 1.8e-3 (the sqrt rule would give 1.8e-4).
    c.centering = "softmax"
    c.koleo_weight = 0.0
    c.heads.update(prototypes=64, hidden=128, bottleneck=32)
    c.batch_size, c.steps_per_epoch, c.epochs = 8, 100, 15
    c.base_lr = 0.02
    c.warmup_epochs, c.teacher_temp_warmup_epochs, c.freeze_last_layer_epochs = 2, 2, 0
    c.log_every, c.checkpoint_every = 100, 1000
  return c
