"""Typed options of the EST message block, built from the ``message:`` mapping of a config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

from est_fairchem.models.common.est_config import (
    ESTConfigError, check_known_options, default_spherical_width, options_mapping,
)


@dataclass(frozen=True)
class MessageConfig:
    """Options of :class:`est_fairchem.models.pure_est.message.ESTMessageBlock`.

    The point set, heads and orientation embedding are shared with the update block (the
    backbone's ``est:`` options).

    Attributes:
        num_steerable_experts: gated steerable experts (feed-forward blocks) on ``a_ij``.
        num_spherical_experts: gated point-wise MLP experts after the cross-attention.
        spherical_hidden_channels: hidden width of each spherical expert (None: 2 x channels;
            the message block runs per edge, E ~ 16 N on QM9, so it is kept narrower than
            the update block's 2 x channels).
        query_residual: add the query grid to the attention output before the experts (the
            transformer decoder's ``x + CrossAttn(x, memory)``), so the point-wise experts
            combine node-pair and edge functions; False feeds the attention output alone.
    """

    num_steerable_experts: int = 1
    num_spherical_experts: int = 2
    spherical_hidden_channels: int | None = None
    query_residual: bool = True

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> "MessageConfig":
        """Validate ``options`` (the ``message:`` block) and build the config."""
        options = options_mapping(options, "message", example="num_spherical_experts: 2")
        check_known_options(options, cls, "message")
        config = cls(**options)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``ESTConfigError`` naming the first invalid option."""

        def fail(key: str, expected: str) -> None:
            raise ESTConfigError(f"message.{key}={getattr(self, key)!r}: expected {expected}")

        for key in ("num_steerable_experts", "num_spherical_experts"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(key, "a non-negative integer")
        if self.num_spherical_experts < 1:
            fail("num_spherical_experts", "at least 1 (the cross-attention is the message)")
        value = self.spherical_hidden_channels
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            fail("spherical_hidden_channels", "a positive integer or null")
        if not isinstance(self.query_residual, bool):
            fail("query_residual", "true or false")

    def resolved(self, channels: int) -> "MessageConfig":
        """These options with a null ``spherical_hidden_channels`` filled in for a grid of
        ``channels`` channels (``est_config.default_spherical_width``): what the block is
        built from and checkpoints store."""
        return replace(self, spherical_hidden_channels=(self.spherical_hidden_channels
                                                        or default_spherical_width(channels)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
