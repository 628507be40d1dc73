"""Argument models: the declarations of layers and settings, validated by pydantic, checked fast without it.

A model is declared once, with plain annotations (`out_channels: PosInt`, `stride: PosPair = 1`) and `Bounds`
for ranges. From that one declaration come

- the **pydantic model** (`pydantic_model(cls)`: `extra="forbid"`, strict, frozen), the reference for what is
  valid and the author of every validation error netspec reports;
- a **fast path** that accepts only values it can prove the pydantic model accepts (a plain int for an int field,
  an int or float within bounds for a float field, a tuple of the right length, ...) and returns what pydantic
  would return. Anything else (a wrong type, a value out of range, a near-miss pydantic may still coerce, such as
  `0` for `Literal[False]`) goes to pydantic, and what pydantic says stands.

So `netspec check` never imports pydantic for a valid spec (importing and building pydantic models costs more than
the rest of `check` together), and a spec with a mistake gets pydantic's verdict. `tests/test_model.py` checks
that the fast path agrees with pydantic on generated values for every field of every model.

Instances are immutable and expose the part of pydantic's `BaseModel` interface netspec uses: attributes,
`model_fields` (with `annotation`, `default`, `is_required()`), `model_validate`, `model_copy(update=...)`, `==`.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from ..record import Factory

__all__ = ["Bounds", "Factory", "FieldSpec", "Invalid", "Model", "pydantic_model"]

REFERENCE_ONLY = False  # True: every validation goes through pydantic (the tests compare both ways)


class Bounds:
    """A range on a number, as in `Annotated[int, Bounds(ge=1)]` (pydantic's `Field(ge=1)`)."""

    __slots__ = ("ge", "gt", "le", "lt")

    def __init__(self, *, ge=None, gt=None, le=None, lt=None):
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt

    def items(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}

    def __repr__(self) -> str:
        return f"Bounds({', '.join(f'{k}={v!r}' for k, v in self.items().items())})"


class Invalid(ValueError):
    """What pydantic said about invalid values: `errors()` is pydantic's `ValidationError.errors()`."""

    def __init__(self, model: str, errors: list[dict]):
        self.model, self._errors = model, errors
        first = errors[0] if errors else {"loc": (), "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        super().__init__(f"{model}: {where + ': ' if where else ''}{first['msg']}")

    def errors(self) -> list[dict]:
        return self._errors


_MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<required>"})()


class FieldSpec:
    """One field: its annotation (with `Annotated` bounds), its default or factory. Like pydantic's FieldInfo."""

    __slots__ = ("annotation", "check", "default", "default_factory", "name")

    def __init__(self, name: str, annotation: Any, default: Any):
        self.name, self.annotation = name, annotation
        self.default_factory = default.make if isinstance(default, Factory) else None
        self.default = _MISSING if isinstance(default, Factory) else default
        self.check: Callable[[Any], Any] | None = None  # compiled on first use

    metadata = ()  # bounds live inside the annotation (`Annotated[int, Bounds(ge=1)]`)

    def is_required(self) -> bool:
        return self.default is _MISSING and self.default_factory is None

    def __repr__(self) -> str:
        return f"FieldSpec({self.name!r}, {self.annotation!r}, default={self.default!r})"


class Model:
    """Base of argument models. Subclasses declare fields as class annotations, defaults as class attributes."""

    model_fields: ClassVar[dict[str, FieldSpec]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fields: dict[str, FieldSpec] = {}
        for klass in reversed(cls.__mro__):
            if klass is Model or not issubclass(klass, Model):
                continue
            for name, ann in vars(klass).get("__annotations__", {}).items():
                if isinstance(ann, str):
                    raise TypeError(f"{cls.__name__}.{name}: annotations must be real types (no __future__ import)")
                if get_origin(ann) is ClassVar or name.startswith("_"):
                    continue
                fields[name] = FieldSpec(name, ann, vars(klass).get(name, _MISSING))
        cls.model_fields = fields
        cls._pydantic = None

    def __init__(self, **values):
        validated = type(self)._validate(values)
        object.__setattr__(self, "__dict__", validated)

    # ---- validation ------------------------------------------------------------------------------------------
    @classmethod
    def model_validate(cls, values: dict):
        """Validate a dict of field values (always strictly: `'128'` is not 128); raises `Invalid` with pydantic's
        errors."""
        return cls(**values)

    @classmethod
    def _validate(cls, values: dict) -> dict:
        out = None if REFERENCE_ONLY else cls._fast(values)
        if out is None:
            out = cls._reference(values)
        return out

    @classmethod
    def _fast(cls, values: dict) -> dict | None:
        """The validated fields, or None where pydantic must decide."""
        fields = cls.model_fields
        for name in values:
            if name not in fields:
                return None
        out = {}
        for name, f in fields.items():
            if name in values:
                if f.check is None:
                    f.check = _compile(f.annotation)
                v = f.check(values[name])
                if v is _NO:
                    return None
                out[name] = v
            elif f.default_factory is not None:
                out[name] = f.default_factory()
            elif f.default is _MISSING:
                return None
            else:
                out[name] = f.default
        return out

    @classmethod
    def _reference(cls, values: dict) -> dict:
        from pydantic import ValidationError

        try:
            m = pydantic_model(cls).model_validate(values, strict=True)
        except ValidationError as e:
            raise Invalid(cls.__name__, e.errors(include_url=False)) from None
        return {name: getattr(m, name) for name in cls.model_fields}

    # ---- the BaseModel interface netspec uses ----------------------------------------------------------------
    def model_copy(self, *, update: dict | None = None):
        """A copy with some fields replaced (not validated, as in pydantic)."""
        new = object.__new__(type(self))
        object.__setattr__(new, "__dict__", {**self.__dict__, **(update or {})})
        return new

    def __setattr__(self, name, value):
        raise TypeError(f"{type(self).__name__} is immutable; use model_copy(update={{{name!r}: ...}})")

    __delattr__ = __setattr__

    def __eq__(self, other):
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self):
        return hash((type(self), tuple(self.__dict__.values())))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


# ---------------------------------------------------------------------------------------------------------------
# The fast path: a checker per annotation that returns the value pydantic would return, or _NO
# ---------------------------------------------------------------------------------------------------------------

_NO: Any = object()


def _compile(ann: Any) -> Callable[[Any], Any]:
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        inner = _compile(args[0])
        bounds = [b for b in args[1:] if isinstance(b, Bounds)]
        if not bounds:
            return inner
        ge, gt, le, lt = (
            next((getattr(b, k) for b in bounds if getattr(b, k) is not None), None) for k in ("ge", "gt", "le", "lt")
        )

        def bounded(v):
            v = inner(v)
            if (
                v is _NO
                or (ge is not None and not v >= ge)
                or (gt is not None and not v > gt)
                or (le is not None and not v <= le)
                or (lt is not None and not v < lt)
            ):
                return _NO
            return v

        return bounded
    if origin is Union or origin is types.UnionType:
        members = [_compile(a) for a in args]

        def union(v):
            # pydantic tries the members in order in strict mode; the first one that accepts decides. Members
            # whose accepted values overlap would need pydantic's "smart" tie-break: none of ours do (checked by
            # tests), and a value only a later member takes is still found.
            for m in members:
                r = m(v)
                if r is not _NO:
                    return r
            return _NO

        return union
    if origin is Literal:
        choices = args

        def literal(v):
            for c in choices:  # exact type: pydantic also takes 0 for False; that near-miss goes to pydantic
                if type(v) is type(c) and v == c:
                    return c
            return _NO

        return literal
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _compile(args[0])

            def var_tuple(v):
                if type(v) is not tuple:
                    return _NO
                out = tuple(item(x) for x in v)
                return _NO if any(x is _NO for x in out) else out

            return var_tuple
        items = [_compile(a) for a in args]

        def fixed_tuple(v):
            if type(v) is not tuple or len(v) != len(items):
                return _NO
            out = tuple(c(x) for c, x in zip(items, v))
            return _NO if any(x is _NO for x in out) else out

        return fixed_tuple
    if ann is int:
        return lambda v: v if type(v) is int else _NO
    if ann is float:

        def to_float(v):
            if type(v) is float:
                return v
            if type(v) is int:
                try:
                    return float(v)
                except OverflowError:  # pydantic refuses ints too large for a float
                    return _NO
            return _NO

        return to_float
    if ann is bool:
        return lambda v: v if type(v) is bool else _NO
    if ann is str:
        return lambda v: v if type(v) is str else _NO
    if ann is type(None) or ann is None:
        return lambda v: v if v is None else _NO
    if isinstance(ann, type) and issubclass(ann, Model):
        return lambda v: v if isinstance(v, ann) else _NO
    raise TypeError(f"netspec.model: no fast check for {ann!r}")  # a declaration error, caught by the tests


# ---------------------------------------------------------------------------------------------------------------
# The pydantic model of a declaration
# ---------------------------------------------------------------------------------------------------------------


def pydantic_model(cls: type[Model]):
    """The pydantic model for `cls`, built on first use: one field per declared field, `extra="forbid"`, strict."""
    if cls.__dict__.get("_pydantic") is None:
        from pydantic import ConfigDict, Field, create_model

        fields: dict[str, Any] = {}
        for name, f in cls.model_fields.items():
            ann = _to_pydantic(f.annotation)
            if f.default_factory is not None:
                fields[name] = (ann, Field(default_factory=f.default_factory))
            else:
                fields[name] = (ann, ... if f.is_required() else f.default)
        cls._pydantic = create_model(  # type: ignore[call-overload]
            cls.__name__,
            __config__=ConfigDict(extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True),
            **fields,
        )
    return cls._pydantic


def _to_pydantic(ann: Any) -> Any:
    """`Annotated[int, Bounds(ge=1)]` -> `Annotated[int, Field(ge=1)]`; a Model class -> `InstanceOf[cls]`."""
    from pydantic import Field, InstanceOf

    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        meta = [Field(**m.items()) if isinstance(m, Bounds) else m for m in args[1:]]
        return Annotated[(_to_pydantic(args[0]), *meta)]  # type: ignore[return-value]
    if origin is Union or origin is types.UnionType:
        return Union[tuple(_to_pydantic(a) for a in args)]  # type: ignore[return-value]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple[_to_pydantic(args[0]), ...]  # type: ignore[misc]
        return tuple[tuple(_to_pydantic(a) for a in args)]  # type: ignore[misc]
    if isinstance(ann, type) and issubclass(ann, Model):
        return InstanceOf[ann]
    return ann
