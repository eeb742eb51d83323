"""`kimtrain validate`: the physics a potential is run for (equation of state, elastic constants,
phonons, a vacancy, MD stability), for trained runs and EIPs on the same footing, beside DFT and
experiment (references.yaml)."""
