"""EfficientNet classifier: model, training loop, evaluation and Grad-CAM for the augmentation study."""
