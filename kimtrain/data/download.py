"""Download the paper's datasets (needs network): `python -m kimtrain.data.download al|si --out DIR`."""
from __future__ import annotations

import argparse
import json
import tarfile
import urllib.request
from pathlib import Path

from .readers import convert

ANI_AL = "https://github.com/atomistic-ml/ani-al/raw/master/data/Al-data.tgz"
KIM_SI_ARTICLE = "https://api.figshare.com/v2/articles/21266064/files"


def fetch(url: str, dest: Path) -> Path:
    if not dest.exists():
        print(f"downloading {url}")
        tmp = dest.with_suffix(dest.suffix + ".part")
        urllib.request.urlretrieve(url, tmp)
        tmp.rename(dest)
    return dest


def download_al(out: Path):
    tgz = fetch(ANI_AL, out / "Al-data.tgz")
    with tarfile.open(tgz) as tf:
        tf.extractall(out / "raw", filter="data")
    for h5 in sorted((out / "raw").rglob("*.h5")):
        n = convert("ani-al", h5, out / f"{h5.stem}.extxyz.gz")
        print(f"{h5.name}: {n} configurations")


def download_si(out: Path):
    files = json.load(urllib.request.urlopen(KIM_SI_ARTICLE))
    for f in files:
        path = fetch(f["download_url"], out / f["name"])
        print(f"{path}: downloaded; any file ase.io.read understands is usable as --data directly")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dataset", choices=["al", "si"])
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    {"al": download_al, "si": download_si}[a.dataset](out)


if __name__ == "__main__":
    main()
