"""The data layer: datasets numbered as kimlabel numbers them, readers and downloads, splits,
per-species reference energies, EIP labels aligned to DFT, neighbour graphs and SOAP descriptors.
It imports nothing else of kimtrain but config."""
