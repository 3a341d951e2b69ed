"""The DINOv2 objectives (spec section 3): DINO, iBOT and KoLeo, and teacher centring."""
