"""MV_Hybrid in JAX/Flax: hybrid MambaVision/ViT backbones for computational pathology."""

__version__ = "0.1.0"
