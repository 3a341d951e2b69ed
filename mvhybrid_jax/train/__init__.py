"""DINOv2/iBOT self-supervised pretraining: the student/teacher step and the optimiser."""
