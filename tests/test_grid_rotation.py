"""Random grid rotations drawn on the features' device (sphere/rotation.py)."""

import torch

from est_fairchem.sphere.rotation import (
    quaternion_to_matrix,
    random_rotation_matrices,
    random_system_matrices,
    random_system_rotations,
)
from est_fairchem.sphere.wigner import wigner_d

LMAX = 4


def test_random_rotations_are_proper_and_haar_distributed():
    torch.manual_seed(0)
    rotations = random_rotation_matrices(20000, torch.float64, "cpu")
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(rotations @ rotations.transpose(1, 2), eye.expand_as(rotations), atol=1e-12)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(20000, dtype=torch.float64))
    # Haar measure: E[R] = 0 and E[R_ij^2] = 1/3 for every entry.
    assert rotations.mean(0).abs().max() < 0.02
    assert (rotations.square().mean(0) - 1 / 3).abs().max() < 0.02


def test_one_rotation_per_system_and_rows_of_a_system_agree():
    torch.manual_seed(1)
    systems = torch.tensor([0, 0, 1, 1, 1, 2])
    wigner = random_system_rotations(LMAX, systems, 6, torch.float64, "cpu")
    assert wigner.shape == (6, (LMAX + 1) ** 2, (LMAX + 1) ** 2)
    assert torch.equal(wigner[0], wigner[1]) and torch.equal(wigner[2], wigner[4])
    assert not torch.allclose(wigner[0], wigner[2]) and not torch.allclose(wigner[4], wigner[5])
    eye = torch.eye((LMAX + 1) ** 2, dtype=torch.float64)
    assert torch.allclose(wigner @ wigner.transpose(1, 2), eye.expand_as(wigner), atol=1e-10)


def test_wigner_of_the_drawn_rotation_is_the_d_of_the_drawn_matrix(float64):
    """The Wigner-D of the training path is the D of the rotation matrix the same RNG draw
    gives."""
    systems = torch.tensor([0, 1, 1])
    torch.manual_seed(2)
    matrices = random_system_matrices(systems, 3, torch.float64, "cpu")
    torch.manual_seed(2)
    wigner = random_system_rotations(LMAX, systems, 3, torch.float64, "cpu")
    assert torch.allclose(wigner, wigner_d(LMAX, matrices), atol=1e-10)


def test_edge_rows_index_rotations_drawn_per_node_bound():
    """Edge rows may be fewer than the systems they name: the bound is passed explicitly."""
    edge_systems = torch.tensor([3])  # one edge, in system 3 of 4
    wigner = random_system_rotations(LMAX, edge_systems, 1, torch.float32, "cpu", max_systems=5)
    assert wigner.shape == (1, (LMAX + 1) ** 2, (LMAX + 1) ** 2) and wigner.dtype == torch.float32


def test_quaternion_map_is_e3nns_rotation_for_any_norm():
    """design §3.5: the same rotation as e3nn's ``quaternion_to_matrix`` of the unit quaternion,
    for quaternions of any norm, and more precise in float32 (the reason to keep ours)."""
    from e3nn import o3

    torch.manual_seed(3)
    q = torch.randn(1000, 4, dtype=torch.float64) * torch.rand(1000, 1, dtype=torch.float64) * 5
    unit = q / q.norm(dim=1, keepdim=True)
    assert torch.allclose(quaternion_to_matrix(q), o3.quaternion_to_matrix(unit), atol=1e-12)
    near_identity = torch.nn.functional.normalize(
        torch.tensor([1.0, 0, 0, 0], dtype=torch.float64) + 1e-3 * q, dim=1)
    exact = quaternion_to_matrix(near_identity)
    ours = (quaternion_to_matrix(near_identity.float()).double() - exact).abs().max()
    theirs = (o3.quaternion_to_matrix(near_identity.float()).double() - exact).abs().max()
    assert ours < 1e-6 < 1e-5 < theirs
