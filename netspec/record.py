"""Plain records for what `netspec check` builds: locations, the syntax tree, the network, the shape table.

A `Record` subclass declares fields as annotations and defaults as class attributes (`Factory(list)` for a fresh
list per instance), and gets what `@dataclass` gives: construction by position or keyword, `==`, `repr`, and with
`frozen=True` immutability and a hash. `dataclass` writes those methods as source text and compiles it for every
class, about 1 ms a class on a small machine, which was a tenth of `netspec check`'s run for the ~30 classes it
uses; a Record shares one set of methods and compiles nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["Factory", "Record"]


class Factory:
    """A default made fresh for each instance (dataclasses' and pydantic's `default_factory`)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]):
        self.make = make


_NONE: Any = object()


class Record:
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, frozen: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        fields: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, ann in vars(klass).get("__annotations__", {}).items():
                if not str(ann).startswith(("ClassVar", "typing.ClassVar")):
                    fields[name] = vars(klass).get(name, _NONE)
        cls._fields = tuple(fields)
        cls._defaults = {k: v for k, v in fields.items() if v is not _NONE}
        missing_after_default = [
            k
            for i, k in enumerate(cls._fields)
            if k not in cls._defaults and any(f in cls._defaults for f in cls._fields[:i])
        ]
        if missing_after_default:
            raise TypeError(f"{cls.__name__}: field {missing_after_default[0]!r} without a default follows one with")
        if frozen:
            cls.__setattr__ = cls.__delattr__ = Record._frozen  # type: ignore[method-assign]
            cls.__hash__ = Record._hash  # type: ignore[method-assign]
        else:
            cls.__hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as a dataclass

    def __init__(self, *args, **kwargs):
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} arguments, got {len(args)}")
        values = dict(zip(fields, args))
        for k, v in kwargs.items():
            if k not in fields or k in values:
                raise TypeError(f"{type(self).__name__}: {'unknown' if k not in fields else 'repeated'} field {k!r}")
            values[k] = v
        if len(values) < len(fields):
            for k in fields:
                if k not in values:
                    d = self._defaults.get(k, _NONE)
                    if d is _NONE:
                        raise TypeError(f"{type(self).__name__}: missing field {k!r}")
                    values[k] = d.make() if isinstance(d, Factory) else d
        d = self.__dict__
        for k in fields:  # declaration order, for repr and hash
            d[k] = values[k]

    def _frozen(self, name, value=None):
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def _hash(self):
        return hash((type(self), *self.__dict__.values()))

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"
