"""Refuse structures with NaN or infinite positions or cell before a backbone runs.

A non-finite position otherwise passes silently: the atom loses its edges (no distance is
below the cutoff) and the model returns finite numbers for a structure that does not exist.
Every EST backbone calls :func:`check_finite_structures` at the start of its forward, so
training, validation and prediction all stop at the first batch holding one. The check costs
one host sync per forward; the message is built only when it fails.

:func:`check_graph_has_edges` refuses a batch whose graph has no edge at all (isolated atoms:
wrong units, a missing cell); it reads only the edge count's shape, no sync.
"""

from __future__ import annotations

import torch

from est_fairchem.errors import InputError


def non_finite(values: torch.Tensor) -> str | None:
    """``"NaN"``, ``"inf"`` or ``"NaN and inf"`` for what ``values`` holds, None if finite."""
    kinds = [name for name, test in (("NaN", torch.isnan), ("inf", torch.isinf))
             if bool(test(values).any())]
    return " and ".join(kinds) or None


def _system_label(data, index: int) -> str:
    """``sid 12`` (``, fid 3`` for S2EF frames), or the position in the batch without sids."""
    labels = []
    for key in ("sid", "fid"):
        values = getattr(data, key, None)
        if values is None:
            continue
        if isinstance(values, torch.Tensor):
            values = values.reshape(-1).tolist()
        value = values[index] if isinstance(values, (list, tuple)) else values
        labels.append(f"{key} {value}")
    return ", ".join(labels) or f"system {index} of the batch"


def describe_non_finite(data, check_cell: bool) -> str:
    """One line naming each system of the batch ``data`` with a non-finite pos or cell."""
    natoms = data.natoms.reshape(-1).tolist()
    per_system = list(torch.split(data.pos.detach(), natoms))
    cells = data.cell.detach().reshape(-1, 3, 3) if check_cell else None
    problems = []
    for index, pos in enumerate(per_system):
        cell = cells[index] if cells is not None and index < len(cells) else None
        found = []
        for name, values in (("pos", pos), ("cell", cell)):
            kind = None if values is None else non_finite(values)
            if kind:
                found.append(f"{name} holds {kind}")
        if found:
            problems.append(f"{_system_label(data, index)}: {', '.join(found)}")
    return ("non-finite input structure(s), refused (positions and cell must be finite "
            "numbers): " + "; ".join(problems))


def check_finite_structures(data, check_cell: bool = True) -> None:
    """Raise :class:`InputError` naming the systems (``sid``) of the fairchem batch ``data``
    whose ``pos`` [N, 3] or, with ``check_cell`` and a ``cell`` [B, 3, 3], cell holds NaN or
    inf. Non-periodic models pass ``check_cell=False`` (their cell is never read)."""
    cell = getattr(data, "cell", None) if check_cell else None
    finite = torch.isfinite(data.pos).all()
    if cell is not None:
        finite = finite & torch.isfinite(cell).all()
    if not bool(finite):  # the one host sync
        raise InputError(describe_non_finite(data, check_cell=cell is not None))


def check_graph_has_edges(edge_index: torch.Tensor, data, cutoff: float) -> None:
    """Raise :class:`InputError` when a batch's graph has no edge: no atom of any of its
    structures has a neighbour within ``cutoff``. (EquiformerV2 then fails with torch's
    "min(): Expected reduction dim to be specified for input.numel() == 0"; Equiformer
    predicts from the atom embeddings alone.)

    Args:
        edge_index: [2, E] edges of the batch (any E; only E == 0 is refused).
        data: the fairchem batch (``natoms`` [B]; ``sid`` [B], if present, is named).
        cutoff: the graph's cutoff radius in Å (the model's ``max_radius``).
    """
    if edge_index.shape[1] > 0:
        return
    structures = len(data.natoms)
    sid = getattr(data, "sid", None)
    sids = [] if sid is None else list(sid.tolist() if hasattr(sid, "tolist") else sid)
    shown = ", ".join(str(s) for s in sids[:5]) + (", ..." if len(sids) > 5 else "")
    named = f" (sid {shown})" if sids else ""
    raise InputError(
        f"a batch of {structures} structure(s){named} has no edge: no atom has a neighbour "
        f"within the cutoff of {cutoff:g} Å (model max_radius); check that positions are in Å "
        "and the cell and pbc flags, or raise max_radius")


def check_batch_periodicity(data, use_pbc: bool) -> None:
    """Raise :class:`InputError` when the batch ``data`` carries each structure's ``pbc``
    ([B, 3], or [3B] as fairchem collates it) and its structures differ in periodicity
    (fairchem's ``radius_graph_pbc`` uses the first structure's flags for the whole batch), or
    a structure is periodic while the model's ``use_pbc`` is false (its images would be left
    out). Without ``pbc`` in the batch nothing is checked."""
    pbc = getattr(data, "pbc", None)
    if not isinstance(pbc, torch.Tensor) or pbc.numel() != 3 * len(data.natoms):
        return
    flags = pbc.reshape(-1, 3).bool()
    mixed = (flags != flags[:1]).any(dim=1)
    periodic = flags.any(dim=1)
    if not bool(mixed.any() | (periodic.any() & (not use_pbc))):  # the one host sync
        return
    rows = flags.tolist()
    spelled = {index: "(" + ", ".join(str(f) for f in row) + ")" for index, row in enumerate(rows)}
    if bool(mixed.any()):
        odd = mixed.nonzero().reshape(-1).tolist()[:5]
        named = "; ".join(f"{_system_label(data, i)}: pbc {spelled[i]}" for i in odd)
        raise InputError(
            f"a batch mixes periodicities ({_system_label(data, 0)}: pbc {spelled[0]}; {named}): "
            "fairchem builds a batch's graph with its first structure's pbc, so the others "
            "would gain or lose periodic images; keep one periodicity per dataset")
    named = "; ".join(f"{_system_label(data, i)}: pbc {spelled[i]}"
                      for i in periodic.nonzero().reshape(-1).tolist()[:5])
    raise InputError(
        f"periodic structures ({named}) given to a model with use_pbc: false, which would "
        "leave out their periodic images; set model.backbone.use_pbc: true (non-periodic "
        "structures keep their graph there too), or give the structures pbc=False")
