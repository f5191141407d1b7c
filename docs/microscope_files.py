"""A real micrograph as a Zeiss CZI and an OME-TIFF, dehazed from the command line.

Writes the channels of a real multi-channel TIFF into a CZI (with Zeiss's pylibCZIrw) and an
OME-TIFF (tifffile), each with channel names and a pixel size, and the chosen channel alone as
a plain TIFF. Then runs `hazematching predict` on each, as a user would (the bundled model), and
records what came out: the pixel size and channel names kept in the outputs, the largest
difference of each MMSE from the plain TIFF's, and the files' permissions.

    python docs/microscope_files.py ../shared/data/real/bbbc022_u2os_ixm_A02_s9.tif \
        --channels nuclei,stain-2,stain-3 --use nuclei --pixel-size 0.656 \
        --out out/microscope-files --record docs/results/microscope-files.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from hazematching.data.inputs import read_input
from hazematching.data.microscopy import open_image
from hazematching.data.tiff import read_planes

EXE = str(Path(sys.executable).parent / "hazematching")


def write_files(
    source: Path, names: list[str], pixel: float, use: str, folder: Path
) -> dict[str, Path]:
    """The CZI, the OME-TIFF and the plain TIFF of channel `use`, from a (C, Y, X) TIFF."""
    from pylibCZIrw import czi as pyczi

    data = read_planes(source, channels=None)[0].astype(np.uint16)  # (C, Y, X) of the one plane
    if len(names) != len(data):
        raise SystemExit(f"{source} has {len(data)} channels, {len(names)} names given")
    files = {"czi": folder / "cells.czi", "ome-tiff": folder / "cells.ome.tif"}
    with pyczi.create_czi(str(files["czi"]), exist_ok=True) as czi:
        for c, plane in enumerate(data):
            czi.write(plane[..., None], plane={"C": c})
        czi.write_metadata(  # metres, as the CZI format stores them
            document_name="cells",
            channel_names=dict(enumerate(names)),
            scale_x=pixel * 1e-6,
            scale_y=pixel * 1e-6,
        )
    tifffile.imwrite(
        files["ome-tiff"],
        data,
        ome=True,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": pixel,
            "PhysicalSizeY": pixel,
            "Channel": {"Name": names},
        },
    )
    files["plain"] = folder / "cells.tif"
    tifffile.imwrite(files["plain"], data[names.index(use)])
    return files


def dehaze(path: Path, out: Path, options: list[str]) -> float:
    """Seconds `hazematching predict` took on `path` (start-up included)."""
    start = time.perf_counter()
    subprocess.run([EXE, "predict", str(path), "--out", str(out), "--no-progress", *options],
                   check=True)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="a real (C, Y, X) TIFF")
    parser.add_argument("--channels", required=True, help="names written into the files")
    parser.add_argument("--use", required=True, help="the channel to dehaze, by name")
    parser.add_argument("--pixel-size", type=float, required=True, help="micrometres")
    parser.add_argument("--out", type=Path, default=Path("out/microscope-files"))
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    names = args.channels.split(",")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    files = write_files(args.image, names, args.pixel_size, args.use, args.out)
    runs = {
        "czi": (files["czi"], ["--channel", args.use]),
        "ome-tiff": (files["ome-tiff"], ["--channel", args.use, "--format", "ome-tiff"]),
        "plain": (files["plain"], []),
    }
    seconds = {
        kind: dehaze(path, args.out / kind, options) for kind, (path, options) in runs.items()
    }
    reference = tifffile.imread(args.out / "plain" / "cells.tif")[0]
    results = {}
    for kind in ("czi", "ome-tiff"):
        (written,) = [p for p in (args.out / kind).glob("cells*.tif")]
        mmse, kept = read_input(written, "mmse") if kind == "ome-tiff" else read_input(written, 0)
        if kind == "czi":  # ImageJ slice labels, as Fiji shows them
            with tifffile.TiffFile(written) as tif:
                labels = tif.imagej_metadata["Labels"][:2]
        else:  # the OME-XML's channel names, as Bio-Formats and bioio read them
            labels = [str(n) for n in open_image(written).channel_names]
        record = json.loads((args.out / kind / "predict.json").read_text())
        results[kind] = {
            "command": f"hazematching predict {files[kind].name} --out OUT "
            + " ".join(runs[kind][1]),
            "output": written.name,
            "seconds": round(seconds[kind], 1),
            "output_pixel_size_um": kept.pixel_size,
            "output_channels": labels,
            "input_metadata": record["input_metadata"][0],
            "max_abs_mmse_difference_to_plain_tiff": float(np.abs(mmse[0] - reference).max()),
            "modes": sorted(
                {oct(stat.S_IMODE(p.stat().st_mode)) for p in (args.out / kind).iterdir()}
            ),
        }
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(
        json.dumps(
            {
                "image": args.image.name,
                "pixel_size_um": args.pixel_size,
                "channels": names,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
