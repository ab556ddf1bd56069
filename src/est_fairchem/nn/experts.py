"""Gate and spherical experts of the mixture of hybrid experts (design §5)."""

from __future__ import annotations

import torch
from torch import nn

from est_fairchem.nn.renamed_keys import accept_old_keys
from est_fairchem.sphere.precision import full_precision, full_precision_dtype


class ExpertGate(nn.Module):
    """Dense softmax gate over all experts from the invariant (l=0) channels.

    ``g = softmax(SiLU(W2 SiLU(W1 LN(x0) + b1) + b2))`` as in the reference implementation
    (design §5.1); no top-k, no balance loss (the paper's Tables 7-8 found both hurt). Under
    ``torch.autocast`` the softmax runs in float32 (autocast off), so the weights sum to 1 to
    float32 precision.

    Args:
        channels: C of the l=0 features.
        num_experts: n_st + n_sp.
    """

    def __init__(self, channels: int, num_experts: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.hidden = nn.Linear(channels, channels)
        self.output = nn.Linear(channels, num_experts)
        self.act = nn.SiLU()
        accept_old_keys(self, {"net.0.": "norm.", "net.1.": "hidden.", "net.3.": "output."})

    def forward(self, scalars: torch.Tensor) -> torch.Tensor:
        """[N, C] invariant features -> [N, num_experts] weights summing to 1."""
        logits = self.act(self.output(self.act(self.hidden(self.norm(scalars)))))
        dtype = full_precision_dtype(logits)
        with full_precision(logits.device):
            return torch.softmax(logits.to(dtype), dim=-1)


class SphericalExperts(nn.Module):
    """n point-wise MLP experts on grid features, evaluated together and mixed by the gate.

    Expert j is ``W2_j SiLU(W1_j LN(h) + b1_j) + b2_j`` (hidden width H). All first layers are
    one [C, n*H] matrix, and because the second layer is linear the gated sum
    ``sum_j g_j (W2_j a_j + b2_j)`` is one [n*H, C] matrix applied to the gate-scaled hidden
    activations: two matrix products for all experts instead of a loop. The LayerNorm is
    shared by the experts (a per-expert affine LayerNorm is absorbed by W1_j and b1_j).

    Args:
        channels: C.
        hidden_channels: H per expert.
        num_experts: n.
    """

    def __init__(self, channels: int, hidden_channels: int, num_experts: int):
        super().__init__()
        self.num_experts = num_experts
        self.hidden_channels = hidden_channels
        self.norm = nn.LayerNorm(channels)
        self.up = nn.Linear(channels, num_experts * hidden_channels)
        self.down = nn.Linear(num_experts * hidden_channels, channels, bias=False)
        self.down_bias = nn.Parameter(torch.zeros(num_experts, channels))
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Mix the experts.

        Args:
            h: [N, S, C] grid features.
            gates: [N, n] gate weights of these experts.
        Returns:
            [N, S, C] = sum_j gates[:, j] * expert_j(h).
        """
        n, s, _ = h.shape
        hidden = self.act(self.up(self.norm(h)))  # [N, S, n*H]
        hidden = hidden.view(n, s, self.num_experts, self.hidden_channels)
        hidden = hidden * gates.to(hidden.dtype).unsqueeze(1).unsqueeze(-1)  # [N, 1, n, 1]
        out = self.down(hidden.view(n, s, -1))
        return out + (gates.to(out.dtype) @ self.down_bias).unsqueeze(1)
