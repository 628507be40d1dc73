"""Calls -> argument models, validated by pydantic; and the one place where pydantic's errors are reworded.

Every layer, optimizer, schedule and transform a spec may call is an `ArgModel`: a pydantic model with PyTorch's own
argument names, types and defaults, strict (`'128'` is not 128), refusing unknown arguments, immutable. `validated`
maps a call's positional and keyword arguments onto the fields and lets pydantic judge them; what pydantic says is
turned into netspec's wording (`argument 'stride' of Conv2d should be greater than or equal to 1, got 0`) with a
hint from `describe_type`, at the argument that is wrong.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from ..errors import Location, SpecError
from .hints import did_you_mean, plural

# ---- the types of arguments ------------------------------------------------------------------------------------
PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
Prob = Annotated[float, Field(ge=0.0, le=1.0)]
PosPair = PosInt | tuple[PosInt, PosInt]
NonNegPair = NonNegInt | tuple[NonNegInt, NonNegInt]

STRICT = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)


T = typing.TypeVar("T")


def pair(v: T | tuple[T, T]) -> tuple[T, T]:
    """An `x or (x, x)` argument as a pair: 3 -> (3, 3), (3, None) stays."""
    return (v[0], v[1]) if isinstance(v, tuple) else (v, v)


@dataclass(frozen=True, slots=True)
class CallValue:
    """A call written as a value (in `train`): `SGD(lr=0.1)`, `RandomCrop(padding=4)`."""

    name: str
    args: tuple[tuple[Any, Location], ...]  # (value, location of the argument)
    kwargs: tuple[tuple[str, Any, Location, Location], ...]  # (name, value, location of the name, of `name=value`)
    loc: Location
    name_loc: Location


@dataclass(frozen=True, slots=True)
class Symbol:
    """A bare word that names no constant (`data cifar10`): allowed only where a setting takes a name."""

    name: str
    loc: Location


class ArgModel(BaseModel):
    """The arguments of one call in a spec: strict types, unknown arguments refused, immutable.

    `POSITIONAL` is PyTorch's positional order of the arguments a user writes; `INFERRED` names the constructor's
    arguments that are worked out from the input and never written (`in_channels`).
    """

    model_config = STRICT
    POSITIONAL: ClassVar[tuple[str, ...]] = ()
    INFERRED: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def kind(cls) -> str:
        """The name the spec calls: `Conv2d`, `SGD`, `RandomCrop`."""
        return cls.__name__

    @classmethod
    def signature(cls) -> str:
        """`Conv2d(out_channels, kernel_size, stride=1, ...)` for hints and docs."""
        parts = [name if f.is_required() else f"{name}={show(f.default)}" for name, f in cls.model_fields.items()]
        return f"{cls.__name__}({', '.join(parts)})"

    def args(self) -> dict[str, Any]:
        """The arguments as written or defaulted, for the torch constructor."""
        return {k: getattr(self, k) for k in type(self).model_fields}

    def conflict(self) -> tuple[str, str, str] | None:
        """(argument, what is wrong said after the layer's name, hint) where arguments that pydantic took one by one
        cannot go together (Upsample's size and scale_factor); None where they can. See `check_conflict`."""
        return None


M = typing.TypeVar("M", bound=ArgModel)
B = typing.TypeVar("B", bound=BaseModel)


# ---- values and types in words ---------------------------------------------------------------------------------
def show(value: Any) -> str:
    """A value as a spec writes it: `true`, `'same'`, `SGD(...)`."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (CallValue, Symbol)):
        return value.name + ("(...)" if isinstance(value, CallValue) else "")
    return repr(value)


def type_name(v: Any) -> str:
    """What a value is, in words: `an integer`, `a string`, `a call`."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if v is None:
        return "None"
    if isinstance(v, tuple):
        return "a tuple"
    if isinstance(v, list):
        return "a list"
    return "a call"


def describe_type(ann: Any, metadata: Any = (), plural: bool = False) -> str:
    """A field's type in words, for hints and docs: `an integer >= 1, or a pair of integers >= 1`."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Annotated:
        meta = [m for info in args[1:] for m in getattr(info, "metadata", [info])]
        return describe_type(args[0], [*metadata, *meta], plural)
    if origin is Union or origin is types.UnionType:
        parts: list[str] = []
        for a in args:
            if typing.get_origin(a) is Literal:
                parts.extend(show(v) for v in typing.get_args(a))
            else:
                parts.append(describe_type(a, metadata, plural))
        return _join_or(parts)
    if origin is Literal:
        return _join_or([show(v) for v in args])
    if origin is tuple:
        return _describe_tuple(args, plural)
    bounds = _bounds(metadata)
    if ann is bool:
        return "true or false"
    if ann is int:
        return ("integers" if plural else "an integer") + bounds
    if ann is float:
        return ("numbers" if plural else "a number") + bounds
    if ann is str:
        return "strings" if plural else "a string"
    if ann is type(None):
        return "None"
    return getattr(ann, "__name__", str(ann))


def _describe_tuple(args: tuple[Any, ...], plural: bool) -> str:
    if len(args) == 2 and args[1] is Ellipsis:
        return f"{'tuples' if plural else 'a tuple'} of {describe_type(args[0], plural=True)}"
    inner = [describe_type(a, plural=True) for a in args]
    if len(inner) == 2 and inner[0] == inner[1]:
        return f"{'pairs' if plural else 'a pair'} of {inner[0]}"
    if len(set(inner)) == 1:
        return f"{'tuples' if plural else 'a tuple'} of {len(inner)} {inner[0]}"
    return f"{'tuples' if plural else 'a tuple'} ({', '.join(describe_type(a) for a in args)})"


def _bounds(metadata: Any) -> str:
    b = {}
    for m in metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(m, attr, None) is not None:
                b[attr] = getattr(m, attr)
    lo = (">=", b["ge"]) if "ge" in b else (">", b["gt"]) if "gt" in b else None
    hi = ("<=", b["le"]) if "le" in b else ("<", b["lt"]) if "lt" in b else None
    if lo and hi and lo[0] == ">=" and hi[0] == "<=":
        return f" from {lo[1]:g} to {hi[1]:g}"
    return " and".join(f" {b[0]} {b[1]:g}" for b in (lo, hi) if b)


def _join_or(parts: list[str]) -> str:
    parts = list(dict.fromkeys(parts))
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def takes(model: type[BaseModel], field_name: str | None) -> str | None:
    """`stride takes an integer >= 1, or a pair of integers >= 1`: the hint for a field, or None."""
    if field_name is None or field_name not in model.model_fields:
        return None
    f = model.model_fields[field_name]
    return f"{field_name} takes {describe_type(f.annotation, f.metadata)}"


# ---- pydantic's errors in netspec's words ----------------------------------------------------------------------
def _first_error(e: ValidationError, values: dict[str, Any]) -> ErrorDetails:
    """Of pydantic's errors for one value (one per member of a Union), the one that reads best for what was given:
    a bound on the right kind of value ("should be >= 1") says more than "should be a tuple"."""
    errors = e.errors(include_url=False)
    for err in errors:
        if err["type"] == "missing":
            return err
    first = errors[0]
    field_errors = [e for e in errors if e["loc"][:1] == first["loc"][:1]]
    value = values.get(str(first["loc"][0])) if first["loc"] else None
    wanted: list[ErrorDetails] = []
    if isinstance(value, str):
        wanted = [e for e in field_errors if e["type"] in ("literal_error", "string_type")]
    elif isinstance(value, tuple):
        wanted = [e for e in field_errors if len(e["loc"]) > 2 or e["type"].startswith("too_")]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        bounds = ("greater_than_equal", "greater_than", "less_than_equal", "less_than", "literal_error")
        wanted = [e for e in field_errors if e["type"] in bounds]
    return (wanted or field_errors)[0]


def _should(msg: str) -> str:
    """pydantic's "Input should be ..." -> "should be ..."; any other message -> "is not valid (...)"."""
    for prefix in ("Input should be ", "Input should "):
        if msg.startswith(prefix):
            return "should " + msg[len("Input should ") :]
    return f"is not valid ({msg[0].lower() + msg[1:]})" if msg else "is not valid"


def validated_settings(
    model: type[B], values: dict[str, Any], written: dict[str, Any], locs: dict[str, Location], section: Location | None
) -> B:
    """A settings model (TrainSpec) from its values; a mistake is a SpecError at the setting (`written` holds the
    values as the spec wrote them, for the message)."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
    key = str(err["loc"][0])
    raise SpecError(
        f"setting {key!r} {_should(err['msg'])}, got {show(written.get(key))}",
        locs.get(key, section),
        code="E061",
        hint=takes(model, key),
    )


def validated(model: type[M], call: CallValue) -> M:
    """Map a call's positional and keyword arguments onto the model's fields and validate them; every error is a
    SpecError at the argument (or the name) it is about."""
    values, locs = _arguments(model, call)
    try:
        args = model.model_validate(values)
    except ValidationError as e:
        raise argument_error(model, call.name, values, locs, call.name_loc, e) from None
    check_conflict(args, call.name, locs, call.name_loc)
    return args


def check_conflict(args: ArgModel, name: str, locs: dict[str, Location], name_loc: Location | None) -> None:
    """Arguments valid one by one that cannot go together (`ArgModel.conflict`): a SpecError at the argument it is
    about (`locs`), or at the name. Also for the importer's printed layers."""
    problem = args.conflict()
    if problem is not None:
        field_name, message, hint = problem
        raise SpecError(f"{name} {message}", locs.get(field_name, name_loc), hint=hint, code="E037")


def argument_error(
    model: type[BaseModel],
    name: str,
    values: dict[str, Any],
    locs: dict[str, Location],
    name_loc: Location | None,
    e: ValidationError,
) -> SpecError:
    """pydantic's verdict on the arguments `values` of the layer (or transform) `name`, as a SpecError at the
    argument it is about (`locs`), or at the name for a missing one. Also words the importer's printed layers."""
    err = _first_error(e, values)
    field_name = str(err["loc"][0]) if err["loc"] else None
    signature = model.signature() if issubclass(model, ArgModel) else model.__name__
    if err["type"] == "missing":
        return SpecError(
            f"{name} needs argument {field_name!r}",
            name_loc,
            hint=f"{field_name} has no default: {signature}",
            code="E035",
        )
    loc = locs.get(field_name, name_loc) if field_name else name_loc
    value = values.get(field_name or "")
    hint = takes(model, field_name)
    if isinstance(value, float) and value.is_integer() and err["type"] in ("int_type", "int_from_float"):
        hint = "sizes are integers, and '/' gives a float: write // for integer division, or round(...)"
    return SpecError(
        f"argument {field_name!r} of {name} {_should(err['msg'])}, got {show(value)}",
        loc,
        hint=hint,
        code="E036",
    )


def _arguments(model: type[ArgModel], call: CallValue) -> tuple[dict[str, Any], dict[str, Location]]:
    """The call's arguments by field name, and where each is written."""
    positional, signature = model.POSITIONAL, model.signature()
    if len(call.args) > len(positional):
        _, loc = call.args[len(positional)]
        if not positional:
            msg = f"{call.name} takes no positional arguments, got {len(call.args)}"
        else:
            msg = f"{call.name} takes at most {plural(len(positional), 'positional argument')}, got {len(call.args)}"
        inferred = f"; {', '.join(model.INFERRED)} is worked out from the input" if model.INFERRED else ""
        raise SpecError(msg, loc, hint=signature + inferred, code="E031")
    values: dict[str, Any] = {}
    locs: dict[str, Location] = {}
    for (value, loc), name in zip(call.args, positional):
        values[name], locs[name] = value, loc
    for name, value, name_loc, arg_loc in call.kwargs:
        _check_keyword(model, call, name, name_loc, values)
        values[name], locs[name] = value, arg_loc
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(value)  # lists and tuples are one thing to PyTorch's layer arguments
        if isinstance(value, (CallValue, Symbol)) or (
            isinstance(value, (list, tuple)) and any(isinstance(v, (CallValue, Symbol)) for v in value)
        ):
            raise SpecError(
                f"argument {name!r} of {call.name} cannot be {type_name(value)}",
                locs[name],
                hint=takes(model, name),
                code="E034",
            )
    return values, locs


def _check_keyword(
    model: type[ArgModel], call: CallValue, name: str, name_loc: Location, values: dict[str, Any]
) -> None:
    if name in values:
        twice = name not in model.POSITIONAL[: len(call.args)]
        raise SpecError(
            f"{call.name} got argument {name!r} {'twice' if twice else 'positionally and by name'}",
            name_loc,
            code="E031",
            hint="remove one of them" if twice else model.signature(),
        )
    if name in model.INFERRED:
        raise SpecError(
            f"{name} of {call.name} is worked out from the input and is not written",
            name_loc,
            hint=f"remove `{name}=...`; write {model.signature()}",
            code="E032",
        )
    if name not in model.model_fields:
        hint = did_you_mean(name, model.model_fields)
        raise SpecError(
            f"{call.name} has no argument {name!r}",
            name_loc,
            hint=(hint + " " if hint else "") + model.signature(),
            code="E033",
        )
