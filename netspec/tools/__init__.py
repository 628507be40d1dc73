"""Tools around a spec, one module and one command each: `draw` (a diagram, matplotlib only), `fmt` (one canonical
layout), `diff` (two networks aligned layer by layer) and `export` (ONNX and torch.export, verified).

They use the public names of `netspec.lang`, `netspec.shapes` and `netspec.api`; each command is loaded only when it
runs (see `netspec.cli`).
"""
