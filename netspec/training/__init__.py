"""The shared trainer: data sets, augmentation, the training loop, run folders and reports."""
