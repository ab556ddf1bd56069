"""Typed options of the EST update block, built from the ``est:`` mapping of a config.

A typo or an out-of-range value fails when the model is built, with a message naming the key
and what was expected (fairchem's flat YAML kwargs otherwise swallow such mistakes). The
block's ``preset`` key is resolved into plain options before this validation
(:mod:`est_fairchem.models.common.est_preset`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

import torch
from torch import nn

from est_fairchem.errors import InputError
from est_fairchem.nn.est_update import ESTUpdate
from est_fairchem.nn.experts import ExpertGate
from est_fairchem.nn.spherical_branch import GRID_FRAMES, SphericalBranch
from est_fairchem.sphere.points import SAMPLINGS
from est_fairchem.sphere.transform import min_sphere_points


class ESTConfigError(InputError):
    """An invalid ``est:`` option in a model config."""


def default_spherical_width(grid_channels: int) -> int:
    """The hidden width of a spherical expert when the options name none: 2 x the grid's
    channels (design §5.6)."""
    return 2 * grid_channels


def options_mapping(options: Any, section: str, example: str) -> dict[str, Any]:
    """``options`` (a config's ``section:`` block) as a dict; ``None`` gives ``{}``. Raises
    ``ESTConfigError`` when the block is not a mapping (``est: abc``)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ESTConfigError(
            f"{section}: {options!r}: expected a mapping of options (for example "
            f"'{section}: {{{example}}}'), or nothing for the defaults")
    return dict(options)


def _command_line_booleans(options: dict[str, Any], config_class: type) -> dict[str, Any]:
    """``"true"`` / ``"false"`` (any case) as booleans for the boolean fields of
    ``config_class``: fairchem's command line passes ``--model.backbone.est.x=true`` as text."""
    booleans = {f.name for f in fields(config_class) if f.type in ("bool", bool)}
    words = {"true": True, "false": False}
    return {key: words.get(value.lower(), value)
            if key in booleans and isinstance(value, str) else value
            for key, value in options.items()}


def check_known_options(
    options: Mapping[str, Any], config_class: type, section: str, label: str | None = None,
    resolved_before: tuple[str, ...] = (),
) -> None:
    """Raise ``ESTConfigError`` naming the keys of ``options`` that are not fields of the
    dataclass ``config_class`` (the ``section:`` block of a config), with the valid ones: the
    fields and ``resolved_before``, keys of the block taken out before this check (``preset``)."""
    valid = [f.name for f in fields(config_class)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ESTConfigError(
            f"unknown {label or section} option(s) {unknown} in '{section}:'; "
            f"valid options: {[*resolved_before, *valid]}"
        )


@dataclass(frozen=True)
class ESTConfig:
    """Options of the EST update block (design §3-§6, §10).

    Attributes:
        num_points: S, sphere points of the transform (default 64 = (2L)^2 for L=4, the
            sampling bound; with ``grid_frame: local`` more points buy no equivariance).
        sampling: point set, one of ``fibonacci``, ``lebedev``, ``latlong``.
        repulsion_steps: repulsion iterations refining the Fibonacci lattice (design §3.2).
        num_steerable_experts: n_st, copies of the backbone's feed-forward block.
        num_spherical_experts: n_sp, point-wise MLP experts after spherical attention.
        steerable_hidden_channels: hidden width of steerable experts (None: half the
            backbone's ``ffn_hidden_channels``; set it to ``ffn_hidden_channels`` to warm-start
            from an EquiformerV2 checkpoint).
        spherical_hidden_channels: hidden width of spherical experts (None: 2 x channels).
            The defaults (two spherical experts of width 2C, no steerable expert, 64 points,
            local frame) make the update cheaper in FLOPs than the EquiformerV2 feed-forward
            block it replaces, with fewer parameters, and no less equivariant
            (benchmarks/RESULTS.md, "Whole EST-EquiformerV2 models at equal cost").
        fourier_channels: C_F, channels of the grid features. EquiformerV2: must be null (the
            grid carries ``sphere_channels``). Equiformer: the width of the degree-wise
            projection to the sphere (None: the largest multiplicity of the degrees above 0).
        num_heads: heads of the spherical attention (reference: 1).
        orientation_embedding: append point directions to queries and keys (design §4.2).
        random_grid_rotation: in training, rotate the grid by a random rotation per system
            (design §3.5); never in eval.
        recompute_update: in training, recompute the update block in backward instead of
            storing its activations (``torch.utils.checkpoint``): less memory, one more
            forward of the update per step. Every backbone (EquiformerV2, Equiformer, pure EST).
        grid_frame: ``global``, one fixed grid (the paper; approximately equivariant, error
            falling slowly with num_points); ``local``, the grid turns with a frame built
            from each node's degree-1 features, which makes the branch exactly equivariant at
            any num_points (``est_fairchem.nn.local_frame``).
        allow_option_change: load a checkpoint trained with other options than these (any
            but ``recompute_update`` and ``random_grid_rotation``, which leave predictions
            unchanged) with a warning; without it such a checkpoint is refused, listing each
            differing option (``est_fairchem.models.common.trained_options``).
    """

    num_points: int = 64
    sampling: str = "fibonacci"
    repulsion_steps: int = 500
    num_steerable_experts: int = 0
    num_spherical_experts: int = 2
    steerable_hidden_channels: int | None = None
    spherical_hidden_channels: int | None = None
    fourier_channels: int | None = None
    num_heads: int = 1
    orientation_embedding: bool = True
    random_grid_rotation: bool = True
    grid_frame: str = "local"
    recompute_update: bool = False
    allow_option_change: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None, lmax: int) -> "ESTConfig":
        """Validate ``options`` (the ``est:`` block) for degree ``lmax`` and build the config."""
        options = options_mapping(options, "est", example="num_points: 64")
        check_known_options(options, cls, "est", label="EST", resolved_before=("preset",))
        config = cls(**_command_line_booleans(options, cls))
        config.validate(lmax)
        return config

    def validate(self, lmax: int) -> None:
        """Raise ``ESTConfigError`` naming the first invalid option."""

        def fail(key: str, expected: str) -> None:
            raise ESTConfigError(f"est.{key}={getattr(self, key)!r}: expected {expected}")

        int_keys = ("num_points", "repulsion_steps", "num_steerable_experts",
                    "num_spherical_experts", "num_heads")
        for key in int_keys:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(key, "a non-negative integer")
        for key in ("steerable_hidden_channels", "spherical_hidden_channels", "fourier_channels"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                fail(key, "a positive integer or null")
        for key in ("orientation_embedding", "random_grid_rotation", "recompute_update",
                    "allow_option_change"):
            if not isinstance(getattr(self, key), bool):
                fail(key, "true or false")
        if self.grid_frame not in GRID_FRAMES:
            fail("grid_frame", f"one of {list(GRID_FRAMES)}")
        if self.sampling not in SAMPLINGS:
            fail("sampling", f"one of {list(SAMPLINGS)}")
        bound = min_sphere_points(lmax, self.sampling)
        if self.num_points < bound:
            rule = "(2L+1)^2 for latlong" if self.sampling == "latlong" else "max((2L)^2, (L+1)^2)"
            fail("num_points", f">= {bound} for lmax={lmax} (the sampling bound {rule})")
        if self.num_heads < 1:
            fail("num_heads", "at least 1")
        if self.num_steerable_experts + self.num_spherical_experts < 1:
            fail("num_steerable_experts", "at least one expert in total (steerable + spherical)")

    def resolved(self, grid_channels: int, steerable_hidden_channels: int | None = None,
                 fourier_channels: int | None = None) -> "ESTConfig":
        """These options with every null width the block uses filled in and
        ``repulsion_steps`` 0 unless the points are Fibonacci's (it refines only those): the
        complete options blocks are built from, logged and stored in checkpoints. Unchanged
        where already set; widths a backbone does not use stay null.

        Args:
            grid_channels: the channels the grid carries (EquiformerV2 ``sphere_channels``,
                Equiformer C_F, the pure EST's ``channels``); spherical experts default to
                :func:`default_spherical_width` of it.
            steerable_hidden_channels: the steerable experts' default width, where the
                backbone's experts take one (EquiformerV2).
            fourier_channels: C_F, where the backbone projects to the sphere (Equiformer;
                EquiformerV2 records its ``sphere_channels``).
        """
        return replace(
            self,
            spherical_hidden_channels=(self.spherical_hidden_channels
                                       or default_spherical_width(grid_channels)),
            steerable_hidden_channels=self.steerable_hidden_channels or steerable_hidden_channels,
            fourier_channels=self.fourier_channels or fourier_channels,
            repulsion_steps=self.repulsion_steps if self.sampling == "fibonacci" else 0,
        )

    def spherical_branch(
        self, lmax: int, channels: int, invariant_scalars: bool = True,
        scalar_output: bool = False,
    ) -> SphericalBranch | None:
        """The spherical branch on ``channels`` grid channels (the options resolved for them,
        :meth:`resolved`); None without spherical experts. ``invariant_scalars`` and
        ``scalar_output``: see :class:`~est_fairchem.nn.spherical_branch.SphericalBranch`."""
        if self.num_spherical_experts == 0:
            return None
        config = self.resolved(channels)
        return SphericalBranch(
            lmax, channels, config.num_spherical_experts, config.spherical_hidden_channels,
            config.num_points, config.sampling, config.repulsion_steps, config.num_heads,
            config.orientation_embedding, config.random_grid_rotation, config.grid_frame,
            invariant_scalars, scalar_output,
        )

    def update_block(
        self, lmax: int, channels: int, steerable_experts: list[nn.Module],
        steerable_mixture: Callable[..., torch.Tensor] | None = None,
        scalar_output: bool = False,
    ) -> ESTUpdate:
        """The EST update on ``[N, (L+1)^2, channels]`` features: a gate, the backbone's
        ``steerable_experts`` (``num_steerable_experts`` of them, built by the backbone) and
        the spherical branch; ``steerable_mixture``: their batched form, if any."""
        if len(steerable_experts) != self.num_steerable_experts:
            raise InputError(f"{len(steerable_experts)} steerable experts given; the config "
                             f"has num_steerable_experts={self.num_steerable_experts}")
        gate = ExpertGate(channels, self.num_steerable_experts + self.num_spherical_experts)
        spherical = self.spherical_branch(lmax, channels, scalar_output=scalar_output)
        return ESTUpdate(gate, steerable_experts, spherical, steerable_mixture,
                         self.recompute_update)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
