"""Installed KIM models: their names, and those that cover a set of species (`kimlabel models`)."""
from __future__ import annotations


def installed_models(kind: str = "portableModel") -> list[str]:
    """Names of the installed portable models (or kind="simulatorModel": simulator models)."""
    import kimpy
    col = kimpy.collections.create()
    item = getattr(kimpy.collection_item_type, kind)
    n = col.cache_list_of_item_names_by_type(item)
    return sorted(col.get_item_name_by_type(i) for i in range(n))


def _scan(species):
    """models_for_species in the child process: every installed model created once."""
    import kimpy

    from .session import KIMModel, ModelInitError, silence_stdout
    from .simulator import SimulatorModel
    silence_stdout()
    found = []
    for kim_id in installed_models():
        try:
            supported = KIMModel.supported_species_of(kim_id)
        except ModelInitError:
            continue
        if set(species) <= set(supported):
            found.append({"kim_id": kim_id, "species": sorted(supported)})
    for kim_id in installed_models("simulatorModel"):
        try:
            sm = kimpy.simulator_model.create(kim_id)
        except RuntimeError:
            continue
        supported = sorted(sm.get_supported_species(i) for i in range(sm.get_number_of_supported_species()))
        if not set(species) <= set(supported):
            continue
        try:
            SimulatorModel(kim_id)
            runs = "yes"
        except ModelInitError as err:
            runs = str(err)
        found.append({"kim_id": kim_id, "species": supported, "simulator_model": True, "runs_here": runs})
    return found


def models_for_species(species: list[str]) -> list[dict]:
    """Installed portable and simulator models whose supported species (asked of the KIM API) cover
    `species`; a simulator model says whether it runs here (runs_here: "yes" or why not).

    Every installed model is created once, in a child process (some drivers print banners).
    """
    from concurrent.futures import ProcessPoolExecutor

    from .session import flush_c_stdio, process_context
    flush_c_stdio()
    with ProcessPoolExecutor(1, mp_context=process_context()) as pool:
        return pool.submit(_scan, list(species)).result()
