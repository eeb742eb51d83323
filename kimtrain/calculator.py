"""kimtrain.Calculator: an ASE calculator for a trained run (energy; forces by autograd for the
models that have them; Δ models add their EIP's energy and forces)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator as ASECalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from .models.eip import EIPBaseline
from .training.forces import energy_and_forces
from .config import ModelConfig
from .data.graphs import collate
from .models.factory import model_from_meta, prepare_graphs
from .models.registry import get as get_model
from .training.trainer import pick_device


def load_model(run_dir, device="cpu"):
    """(model, checkpoint dict) from RUN_DIR/best.pt."""
    path = Path(run_dir) / "best.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model (run `kimtrain fit` first)")
    state = torch.load(path, weights_only=False, map_location=device)
    model = model_from_meta(state)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


class Calculator(ASECalculator):
    """Energy (eV) and, for models with forces (SchNet, CGCNN), forces (eV/Å) of a model trained by kimtrain.

        atoms.calc = kimtrain.Calculator("runs/demo/schnet")
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, run_dir, device: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.device = pick_device(device)
        self.model, self.checkpoint = load_model(run_dir, self.device)
        self.config = self.checkpoint["model_config"]
        self.eip = EIPBaseline.from_meta(self.checkpoint.get("eip_baseline"))  # delta models add their EIP

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        species = self.checkpoint["species"]
        unknown = sorted(set(self.atoms.get_chemical_symbols()) - set(species))
        if unknown:
            raise ValueError(f"species {unknown} were not in the training data ({species})")
        wants_stress = "stress" in properties
        wants_forces = "forces" in properties or wants_stress
        spec = get_model(self.config["name"])
        if wants_forces and not spec.forces:
            raise PropertyNotImplementedError(f"{spec.name} predicts energies only")
        if wants_stress and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a cell periodic along all three axes")
        graphs = prepare_graphs([self.atoms], ModelConfig(**self.config), species)
        batch = collate(graphs).to(self.device)
        if wants_stress:
            energy, forces, stress = energy_forces_stress(self.model, batch, self.atoms.get_volume())
            self.results["stress"] = stress
            self.results["forces"] = forces
        elif wants_forces:
            energy, forces = energy_and_forces(self.model, batch)
            self.results["forces"] = forces[:, 0].detach().double().cpu().numpy()
        else:
            with torch.no_grad():
                energy = self.model(batch)
        self.results["energy"] = self.results["free_energy"] = float(energy[0, 0].detach())
        if self.eip is not None:
            e_eip, f_eip = self.eip.evaluate([self.atoms], forces=wants_forces)
            self.results["energy"] = self.results["free_energy"] = self.results["energy"] + float(e_eip[0])
            if wants_forces:
                self.results["forces"] = self.results["forces"] + f_eip[0]
            if wants_stress:
                self.results["stress"] = self.results["stress"] + numerical_stress(
                    lambda at: float(self.eip.evaluate([at])[0][0]), self.atoms)


def energy_forces_stress(model, batch, volume: float):
    """(energies (1, k) eV, forces (n, 3) eV/Å, stress (6,) eV/Å³ in ASE's Voigt order) of a
    one-configuration batch: the stress is (1/V) dE/dε at zero strain ε, by autograd through the
    pair vectors, which a strain maps as r -> r (1 + ε) (positions and cell shifts alike)."""
    eps = torch.zeros(3, 3, dtype=batch.positions.dtype, device=batch.positions.device, requires_grad=True)
    deform = torch.eye(3, dtype=eps.dtype, device=eps.device) + (eps + eps.T) / 2
    positions = batch.positions.detach().requires_grad_(True)
    batch.positions, batch.shift = positions @ deform, batch.shift @ deform
    with torch.enable_grad():
        energy = model(batch)
        g_pos, g_eps = torch.autograd.grad(energy[:, 0].sum(), (positions, eps))
    s = g_eps.detach().double().cpu().numpy() / volume
    return energy, -g_pos.detach().double().cpu().numpy(), np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def numerical_stress(energy_of, atoms, d: float = 1e-5) -> np.ndarray:
    """Stress (6,) eV/Å³, ASE's Voigt order, by central differences of energy_of(atoms) (eV) under
    strains of ±d (for a Δ model's EIP, whose KIM model returns energies and forces only)."""
    volume, cell = atoms.get_volume(), atoms.get_cell()[:]
    out = np.zeros((3, 3))
    for i in range(3):
        for j in range(i, 3):
            e = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[i, j] += sign * d / (2 if i != j else 1)
                strain[j, i] += sign * d / 2 if i != j else 0
                at = atoms.copy()
                at.set_cell(cell @ strain, scale_atoms=True)
                e.append(energy_of(at))
            out[i, j] = out[j, i] = (e[0] - e[1]) / (2 * d) / volume
    return np.array([out[0, 0], out[1, 1], out[2, 2], out[1, 2], out[0, 2], out[0, 1]])
