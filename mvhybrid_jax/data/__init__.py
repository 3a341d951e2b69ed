"""Data: DINOv2 multi-crop augmentation and iBOT masking (pipelines and datasets to follow)."""
