"""`atlas spectrum DIR -o FILE`: a MACO magnitude spectrum from a folder of images."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from atlas.flags import Bounded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="folder of images (jpg, png, ...; subfolders are searched too)")
    parser.add_argument("-o", "--output", required=True, help="the .npy file to write (3, N, N//2+1)")
    parser.add_argument("--size", type=Bounded(16, 8192), default=512, metavar="N",
                        help="side N the images are resized and cropped to (default 512, the default spectrum's; "
                             "an integer from 16 to 8192)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from atlas.atomic import atomic_write
    from atlas.errors import AtlasError
    from atlas.spectrum import compute_spectrum, spectrum_sha256

    output = Path(args.output)
    if output.suffix != ".npy":
        raise AtlasError(f"--output {output} must end in .npy")
    if output.is_dir():  # checked now, not after minutes of reading images
        raise AtlasError(f"--output {output} is a folder: name a .npy file, e.g. {output / 'spectrum.npy'}")
    spectrum = compute_spectrum(args.folder, size=args.size, progress=not args.quiet)
    buffer = io.BytesIO()
    np.save(buffer, spectrum)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output, buffer.getvalue())  # no partial file is ever left, whatever happens
    except OSError as exc:
        raise AtlasError(f"cannot write {output} ({exc.strerror or exc}); pick another --output") from exc
    print(f"wrote {output}: shape {spectrum.shape}, sha256 {spectrum_sha256(output)}")
    return 0
