"""Data: slides to tile shards, the pretraining pipeline (multi-crop augmentation, iBOT masking)
and the evaluation datasets (HEST-1k spots, folders of patches, survival, the embedded synthetic
data)."""
