"""kimtrain.Calculator: an ASE calculator for a trained run (energy; forces by autograd for the
models that have them; Δ models add their EIP's energy and forces)."""
from __future__ import annotations

from pathlib import Path

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

    implemented_properties = ["energy", "free_energy", "forces"]

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
        wants_forces = "forces" in properties
        spec = get_model(self.config["name"])
        if wants_forces and not spec.forces:
            raise PropertyNotImplementedError(f"{spec.name} predicts energies only")
        graphs = prepare_graphs([self.atoms], ModelConfig(**self.config), species)
        batch = collate(graphs).to(self.device)
        if wants_forces:
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
