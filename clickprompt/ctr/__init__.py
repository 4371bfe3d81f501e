"""CTR model zoo: the ten backbones of the paper's Table 2 behind one interface and a name registry.

    from clickprompt.ctr import create_ctr, list_ctr
    model = create_ctr("dcnv2", spec)                  # CTRConfig defaults (App. B.1)
    model = create_ctr("autoint", spec, cfg, attn_layers=4)
    q = model.represent(ids)                           # (B, model.output_dim), Eq. 5
    logits = model(ids)                                # (B,), no sigmoid

Names are lowercase, one spelling each: fm, dnn, deepfm, xdeepfm, ipnn, dcn, autoint, fignn, fgcnn,
dcnv2. Importing this package registers all ten (the model modules are imported at the bottom).
"""

from __future__ import annotations

import dataclasses
import typing

from clickprompt.config import ConfigError, CTRConfig, _coerce
from clickprompt.ctr.base import CTRModel
from clickprompt.data.schema import FeatureSpec

_REGISTRY: dict[str, type[CTRModel]] = {}


def register_ctr(name: str):
    """Class decorator: `@register_ctr("dcnv2")` makes `create_ctr("dcnv2", ...)` build the class.

    Names must be lowercase identifiers; registering a name twice is refused.
    """
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"CTR model name must be a lowercase identifier, got {name!r}")

    def decorator(cls: type[CTRModel]) -> type[CTRModel]:
        if not (isinstance(cls, type) and issubclass(cls, CTRModel)):
            raise TypeError(f"@register_ctr({name!r}) expects a CTRModel subclass, got {cls!r}")
        if name in _REGISTRY:
            raise ValueError(
                f"CTR model {name!r} is already registered (by {_REGISTRY[name].__module__}."
                f"{_REGISTRY[name].__qualname__}); refusing to register {cls.__module__}.{cls.__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_ctr() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def get_ctr_class(name: str) -> type[CTRModel]:
    """The class registered under `name`; KeyError listing the known names on a miss."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown CTR model {name!r}; known models: {', '.join(list_ctr())}") from None


def create_ctr(name: str, spec: FeatureSpec, cfg: CTRConfig | None = None, **overrides) -> CTRModel:
    """Build the model registered as `name` for `spec`.

    Settings apply in one order: `CTRConfig` defaults (or the given `cfg`), then `overrides`
    (CTRConfig field names, values coerced to the field's type). Unknown keys raise ConfigError.
    The caller's `cfg` is never modified; the model keeps a copy whose `model` field is `name`.
    """
    model_cls = get_ctr_class(name)
    cfg = dataclasses.replace(cfg) if cfg is not None else CTRConfig()
    hints = typing.get_type_hints(CTRConfig)
    unknown = sorted(set(overrides) - set(hints))
    if unknown:
        raise ConfigError(f"unknown CTRConfig override(s) {unknown}; known keys: {sorted(hints)}")
    for key, value in overrides.items():
        setattr(cfg, key, _coerce(value, hints[key], f"ctr.{key}"))
    cfg.model = name
    return model_cls(spec, cfg)


# Importing the model modules registers them (each file applies @register_ctr to its class).
from clickprompt.ctr import (  # noqa: E402,F401
    autoint,
    dcn,
    dcnv2,
    deepfm,
    dnn,
    fgcnn,
    fignn,
    fm,
    ipnn,
    xdeepfm,
)

__all__ = ["CTRModel", "create_ctr", "get_ctr_class", "list_ctr", "register_ctr"]
