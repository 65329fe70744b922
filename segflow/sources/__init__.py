"""Ingest sources: videos, image folders, array files, CSV series and Zarr arrays.

Each implements :class:`~segflow.sources.base.Source`. Use
``from segflow.sources.discover import discover, open_source, SourceOptions`` to expand
paths, globs, directories and S3 prefixes into source URIs and to open one. This package
module imports only the interface, so importing it stays light (no PyAV, PIL or Zarr).
"""

from segflow.sources.base import FrameBlock, Source, SourceProbe

__all__ = ["FrameBlock", "Source", "SourceProbe"]
