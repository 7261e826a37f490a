"""The base of every IR node and the decorator that makes a node class.

Passes build many nodes (thousands for a large pipelined loop), so construction is kept
cheap: a node class is a frozen dataclass with ``__slots__`` (``dataclasses.fields``,
``dataclasses.replace``, ``copy`` and ``pickle`` work as for any dataclass) whose
``__init__`` stores each field through its slot descriptor directly instead of the
``object.__setattr__`` call per field of a frozen dataclass's own ``__init__``.
"""

from __future__ import annotations

from dataclasses import MISSING, FrozenInstanceError, dataclass, fields


class Node:
    """Base of every IR node: identity equality and hashing; immutable."""

    __slots__ = ()

    # Identity, so that nodes can key dicts and sets; object's own methods, which cost
    # no Python call on every lookup.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __setattr__(self, name: str, value) -> None:
        raise FrozenInstanceError(
            f"cannot assign to {type(self).__name__}.{name}: IR nodes are immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(
            f"cannot delete {type(self).__name__}.{name}: IR nodes are immutable")


class _Factory:
    """The default of a field filled by its ``default_factory`` (shown as dataclasses do)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def node(cls: type) -> type:
    """Make ``cls`` (a subclass of :class:`Node`) a node class: a frozen dataclass with
    slots, identity equality, no generated repr, and a fast ``__init__`` of the same
    signature as the dataclass's own.

    A subclass that adds no fields (``class Add(BinaryOp)``) needs no decorator, only
    ``__slots__ = ()``, so that its instances carry no ``__dict__``.
    """
    cls = dataclass(frozen=True, eq=False, repr=False, slots=True)(cls)
    # The generated pair refers to the class before slots were added (and so fails on
    # names that are not fields); Node's refuse every assignment.
    del cls.__setattr__, cls.__delattr__
    cls.__init__ = _fast_init(cls)
    return cls


def _fast_init(cls: type):
    """An ``__init__`` taking the dataclass fields of ``cls`` as its dataclass ``__init__``
    does and storing each through the field's slot descriptor."""
    namespace: dict[str, object] = {"_FACTORY": _FACTORY}
    parameters, lines = [], []
    for field in fields(cls):
        name = field.name
        if not field.init or field.kw_only:
            raise TypeError(f"{cls.__name__}.{name}: node fields are positional __init__ fields")
        namespace[f"_set_{name}"] = getattr(cls, name).__set__
        value = name
        if field.default is not MISSING:
            namespace[f"_default_{name}"] = field.default
            parameters.append(f"{name}=_default_{name}")
        elif field.default_factory is not MISSING:
            namespace[f"_factory_{name}"] = field.default_factory
            parameters.append(f"{name}=_FACTORY")
            value = f"_factory_{name}() if {name} is _FACTORY else {name}"
        else:
            parameters.append(name)
        lines.append(f"    _set_{name}(self, {value})")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(lines) + "\n"
    # A file name of its own, so that profiles tell the classes' constructors apart.
    exec(compile(source, f"<{cls.__qualname__}.__init__>", "exec"), namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init
