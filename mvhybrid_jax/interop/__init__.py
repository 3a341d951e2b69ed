"""PyTorch checkpoints in and out (the release's MV_Hybrid, DINOv2 and Hugging Face Dinov2Model).

    from mvhybrid_jax import interop
    model = interop.import_state_dict("mvhybrid", interop.load("mv_hybrid.pth"))
    interop.save(interop.export_state_dict(model), "mv_hybrid.safetensors")

From the shell: python -m mvhybrid_jax.interop.convert IN OUT --arch NAME (both ways).
"""

from mvhybrid_jax.interop.files import load, save
from mvhybrid_jax.interop.state_dict import (backbone_state_dict, export_state_dict,
                                             import_settings, import_state_dict)

__all__ = ["load", "save", "backbone_state_dict", "export_state_dict", "import_settings",
           "import_state_dict"]
