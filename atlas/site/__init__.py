"""The static site: cache -> pages, images and data (gather, images, write, check), no torch.

`atlas.site.build.build()` is the entry point; `publish` and `serve` act on a built site.
"""
