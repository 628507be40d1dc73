"""Import a printed PyTorch module (what `print(model)` writes), or a live one, as a .net spec.

    netspec import model.txt -o model.net             # text as print(model) wrote it, today's or older PyTorch
    netspec import - --order order.txt < model.txt    # with the run order, as a `forward { ... }` section
    netspec import runs/x/checkpoint.pt -o x.net      # the spec a run trained, as it ran

The steps, one module each, data flowing one way:

1. `read`: the printed text -> a tree of `PNode`s, nesting read from the parentheses, not the indentation (pasted
   and paginated text loses it), arguments read by `ast.literal_eval` one by one (nothing is evaluated).
2. `convert`: every printed layer mapped onto netspec's closed table of layers: sizes that follow from the input
   (`in_channels`, `num_features`, `in_features`, `num_channels`) set aside to be checked, and arguments equal to
   PyTorch's defaults dropped.
3. `order`: the run order, the registration order (a printed module does not show `forward()`) unless `--order`
   gives it; `solve`: the input size, found by running netspec's own static shape inference at candidate sizes
   until every inferred size equals the printed one.
4. `fold`: repeated groups into `block`s and `repeat`s wherever that makes the spec shorter (on `items`, the spec
   being written); `render`: the text. `pipeline.import_text` runs the steps and checks that the spec written
   elaborates to exactly the network read from the text (else it writes a plainer form).

`live.from_sequential` does the same for a live `nn.Module` made of `nn.Sequential` stacks and netspec's layers;
`recover.recover_spec` writes what a training run changed (its --set values, --input, and the classes and channels
its data set decided) back into the spec it ran, for `netspec import CHECKPOINT`; `command.import_command` is
`netspec import`.

`fx.from_module` (also `netspec.from_module`) imports any FX-traceable model with its forward(): each module traced
by itself (`trace`), its calls put in the language's terms (`fxcalls`), written as `module`s (`modtree`, `flowtext`),
runs folded into repeats (`repeats`), and the spec checked to rebuild the model. `netspec import torchvision:NAME`
uses it. Only `live`, `fx` and the modules it uses import torch. The importer uses the public names of
`netspec.lang` and `netspec.shapes` only.
"""

from .command import import_command
from .convert import layer_call
from .live import ModuleImportError, from_sequential
from .pipeline import ImportResult, import_text
from .recover import Recovered, recover_spec

__all__ = [
    "ImportResult",
    "ModuleImportError",
    "Recovered",
    "from_module",
    "from_sequential",
    "from_torchvision",
    "import_command",
    "import_text",
    "layer_call",
    "recover_spec",
]


def __getattr__(name: str) -> object:
    # the torch.fx importer loads torch and torchvision: only when it is asked for
    if name in ("from_module", "from_torchvision", "ImportTraceError"):
        from . import fx

        return getattr(fx, name)
    raise AttributeError(f"module 'netspec.importer' has no attribute {name!r}")
