"""kimlabel's periodic images and neighbour lists (kimlabel/_neighbours.c), fuzzed with hypothesis
against ASE's neighbour list and ASE's KIM calculator: random cells (triclinic, nearly flat, tiny,
huge), positions inside and outside them, mixed periodicity and cutoffs. A configuration either
gets the same neighbours and energies, or one of the documented errors; never a crash or a hang.

KIMLABEL_FUZZ_EXAMPLES sets the number of examples per test (`make fuzz` runs many, with the helper
built under AddressSanitizer and UndefinedBehaviorSanitizer)."""
from __future__ import annotations

import faulthandler
import os
import sys
import time

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kimlabel.evaluator import Evaluator  # noqa: E402
from kimlabel.neighbours import BUILD_ERRORS, PAD_ERRORS, Frame, NeighbourLists  # noqa: E402
from kimlabel.potentials import resolve  # noqa: E402

EXAMPLES = int(os.environ.get("KIMLABEL_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("KIMLABEL_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
DOCUMENTED = {m.format(reach=0).split(" (")[0] for m in PAD_ERRORS.values()} | set(BUILD_ERRORS.values())
SW = resolve("SW_Balamane")["SW_Balamane"]


@pytest.fixture(autouse=True, scope="module")
def no_hang():
    """A hang in native code fails the run with the stacks (on the terminal, past pytest's capture),
    rather than waiting for CI's limit: 10 minutes plus 3 s per example of the module's tests."""
    faulthandler.dump_traceback_later(600 + 3 * 2 * EXAMPLES, exit=True, file=open("/dev/tty", "w")
                                      if os.isatty(2) else sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


@st.composite
def cells(draw):
    """A 3x3 cell (rows are vectors, Å) of one of several shapes."""
    kind = draw(st.sampled_from(["triclinic", "flat", "tiny", "huge", "orthogonal"]))
    lengths = {"triclinic": (2.0, 20.0), "flat": (3.0, 15.0), "tiny": (0.4, 2.0), "huge": (100.0, 1e5),
               "orthogonal": (1.0, 30.0)}[kind]
    diag = [draw(st.floats(*lengths)) for _ in range(3)]
    cell = np.diag(diag)
    if kind != "orthogonal":
        tilt = draw(st.lists(st.floats(-0.6, 0.6), min_size=3, max_size=3))
        cell[1, 0], cell[2, 0], cell[2, 1] = tilt[0] * diag[0], tilt[1] * diag[0], tilt[2] * diag[1]
    if kind == "flat":
        cell[draw(st.integers(0, 2))] *= draw(st.floats(1e-3, 0.1))
    return cell


def kind_of(cell) -> str:
    return "huge" if np.linalg.norm(cell, axis=1).min() > 90 else "other"


@st.composite
def configurations(draw, max_atoms=10):
    """(positions, cell, pbc, cutoff): atoms inside and outside the cell, or a small cluster near a
    random point (the usual case in a large vacuum-padded cell)."""
    cell = draw(cells())
    pbc = np.array(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    n = draw(st.integers(1, max_atoms))
    if kind_of(cell) != "huge" and draw(st.booleans()):
        frac = np.array(draw(st.lists(st.floats(-0.5, 1.5), min_size=3 * n, max_size=3 * n))).reshape(n, 3)
        positions = frac @ cell
    else:
        centre = np.array(draw(st.lists(st.floats(-0.2, 1.2), min_size=3, max_size=3))) @ cell
        offsets = np.array(draw(st.lists(st.floats(-4.0, 4.0), min_size=3 * n, max_size=3 * n))).reshape(n, 3)
        positions = centre + offsets
    if draw(st.booleans()):  # a non-periodic axis may have no cell vector at all
        for k in np.flatnonzero(~pbc):
            cell[k] = 0.0
    cutoff = draw(st.floats(1.0, 7.0))
    return positions, cell, pbc, cutoff


def expected_pairs(positions, cell, pbc, cutoff):
    """ASE's neighbour list: {(i, j): sorted distances} over every periodic image, or None when the
    configuration would have more pairs than a test should count."""
    atoms = Atoms("Si%d" % len(positions), positions=positions, cell=cell, pbc=pbc)
    periodic = pbc & (np.linalg.norm(cell, axis=1) > 0)
    if periodic.any():
        volume = abs(np.linalg.det(cell)) if periodic.all() else None
        if volume is not None and len(positions) * 4.2 * cutoff ** 3 / max(volume, 1e-12) > 20_000:
            return None  # more images than a test should enumerate (the thin-cell guard is tested below)
        if not periodic.all():
            thickness = [abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
                         if np.linalg.matrix_rank(cell) == 3 else 0.0 for k in np.flatnonzero(periodic)]
            if min(thickness, default=1.0) < cutoff / 30:
                return None
    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    order = np.lexsort((d, j, i))
    i, j, d = i[order], j[order], d[order]
    starts = np.flatnonzero(np.r_[True, (i[1:] != i[:-1]) | (j[1:] != j[:-1])]) if len(i) else []
    ends = list(starts[1:]) + [len(i)] if len(i) else []
    return {(int(i[a]), int(j[a])): d[a:b].tolist() for a, b in zip(starts, ends)}


MAX_COMPARED = 20_000  # particles: larger configurations are built but not compared pair by pair


def kimlabel_pairs(positions, cell, pbc, cutoff):
    """kimlabel's lists, read back through the KIM callback: {(i, atom of j): sorted distances}
    (None past MAX_COMPARED particles: the lists are built, but not read back)."""
    frame = Frame(cutoff)
    lists = NeighbourLists()
    lists.add([cutoff], cutoff, False)
    frame.load(["Si"] * len(positions), positions, cell, pbc)
    lists.build(frame)
    if frame.total > MAX_COMPARED:
        return None
    pairs = {}
    for i in range(frame.n):
        j = lists.neighbours(0, i)
        r = np.linalg.norm(frame.coords[j] - frame.coords[i], axis=1)
        atoms = frame.image[j]
        for a in np.unique(atoms):
            pairs[(i, int(a))] = sorted(r[atoms == a].tolist())
    return pairs


def near_cutoff(pairs, cutoff):
    return {k: [r for r in v if abs(r - cutoff) > 1e-7] for k, v in pairs.items()}


def same_pairs(mine, theirs, cutoff):
    a = {k: v for k, v in near_cutoff(mine, cutoff).items() if v}
    b = {k: v for k, v in near_cutoff(theirs, cutoff).items() if v}
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-7, err_msg=str(k))


@FUZZ
@given(configurations())
def test_neighbour_lists_equal_ase_or_fail_with_a_documented_reason(config):
    positions, cell, pbc, cutoff = config
    start = time.perf_counter()
    try:
        mine = kimlabel_pairs(positions, cell, pbc, cutoff)
    except ValueError as err:
        assert str(err).split(" (")[0] in DOCUMENTED, err
        event(f"refused: {str(err).split(' (')[0]}")
        return
    elapsed = time.perf_counter() - start
    if mine is None:
        event("many images: lists built, not compared")
        return
    theirs = expected_pairs(positions, cell, pbc, cutoff)
    assume(theirs is not None)
    same_pairs(mine, theirs, cutoff)
    event("same pairs as ASE" + (" (none)" if not mine else ""))
    assert elapsed < 30


@st.composite
def silicon(draw):
    """Si configurations an EIP can compute: atoms at least 1.9 Å apart, in any of the cells."""
    positions, cell, pbc, _ = draw(configurations(max_atoms=8))
    keep = [0]
    for k in range(1, len(positions)):
        if min(np.linalg.norm(positions[k] - positions[m]) for m in keep) > 1.9:
            keep.append(k)
    return positions[keep], cell, pbc


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    os.chdir(tmp_path_factory.mktemp("kim"))  # the KIM API writes kim.log to the working directory
    return Evaluator({"SW_Balamane": SW}, forces=True)


@FUZZ
@given(config=silicon())
def test_energies_equal_ases_kim_calculator_or_get_a_status_with_its_reason(evaluator, config):
    from ase.calculators.kim import KIM

    from kimlabel.inputs import Config
    positions, cell, pbc = config
    cfg = Config(0, "fuzz", 0, ["Si"] * len(positions), positions, cell, pbc)
    row, forces = evaluator.evaluate(cfg)
    status = row["status__SW_Balamane"]
    assert status in ("ok", "model_error", "above_limit")
    if status == "model_error":
        assert row["error__SW_Balamane"], "a model_error carries its reason"
        event(f"model_error: {row['error__SW_Balamane'].split(' (')[0]}")
        return
    atoms = Atoms(cfg.symbols, positions=positions, cell=cell, pbc=pbc)
    # ASE's KIM calculator gets atoms more than a cell outside wrong (bulk Si with one atom moved by
    # two cell vectors: -27.36 eV against -36.33): it is given the same atoms wrapped into the cell
    atoms.wrap()
    if not (np.linalg.norm(cell[pbc], axis=1) > 0).all() or (pbc.any() and abs(np.linalg.det(cell)) < 1e-6):
        event("not compared: ASE needs a full cell")
        return  # ASE's KIM calculator needs a full cell along its periodic axes
    thick = abs(np.linalg.det(cell)) / np.max(np.linalg.norm(np.cross(cell, np.roll(cell, 1, axis=0)), axis=1))
    assume(not pbc.any() or thick > 0.5)  # ASE would build millions of images
    atoms.calc = KIM(SW)
    try:
        energy, ref_forces = atoms.get_potential_energy(), atoms.get_forces()
    except Exception as err:  # ASE's own neighbour list refuses the cell (its limits, not kimlabel's)
        event(f"not compared: ASE fails ({type(err).__name__})")
        return
    assert row["energy__SW_Balamane"] == pytest.approx(energy, abs=1e-6, rel=1e-9)
    mine = np.stack([forces[f"f{c}__SW_Balamane"] for c in "xyz"], axis=1)
    np.testing.assert_allclose(mine, ref_forces, atol=1e-6)
    event(f"same energy and forces as ASE ({status})")


@pytest.mark.parametrize("values", [
    {"positions": [[np.nan, 0, 0]]},
    {"positions": [[1e300, 0, 0], [0, 0, 0]]},
    {"cell": np.diag([1e-9, 5, 5])},
    {"cell": np.diag([np.inf, 5, 5])},
    {"cell": np.diag([1e-4, 1e-4, 1e-4])},
])
def test_absurd_configurations_are_refused_with_a_documented_reason(values):
    """Non-finite or enormous coordinates, singular cells, and cells so thin that the reach would
    need millions of images: a documented error, at once."""
    positions = np.asarray(values.get("positions", [[0.0, 0.0, 0.0]]), dtype=float)
    cell = np.asarray(values.get("cell", np.diag([5.0, 5.0, 5.0])), dtype=float)
    start = time.perf_counter()
    try:
        kimlabel_pairs(positions, cell, np.array([True, True, True]), 4.0)
    except ValueError as err:
        assert str(err).split(" (")[0] in DOCUMENTED, err
    else:
        assert np.isfinite(positions).all() and np.abs(positions).max() > 1e6  # far atoms: lists, no neighbours
    assert time.perf_counter() - start < 5
