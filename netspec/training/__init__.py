"""The shared trainer: any spec, any data set, one run folder.

- `settings`: what a run is asked to do, checked without torch (options, the spec read once, overrides judged)
- `run`: a run from start to results (`train(path)`, `trains(text)`); `resume`: continuing one; `evaluate`
- `loop`: the training epoch and the test pass; `optim`: optimizers and schedules; `device`: processes, device,
  precision
- `checkpoint`, `run_folder`, `report`: what a run writes (checkpoint.pt; settings, env, metrics, results; the log,
  report.md, plots and `compare`)
- `data`: data sets by name or path, read by `readers` (CIFAR, MNIST), `folders` (Tiny ImageNet, image folders) and
  `synthetic` (shapes) into an `images.ImageData`
- `augment` and `color`: augmentation of whole uint8 batches; `batch`: what they share, and normalization

Importing this package imports nothing: `netspec check` uses `settings` alone, without torch.
"""
