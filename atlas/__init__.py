"""Feature-visualization atlas: MACO renders of a vision model's classes and channels, as a static site."""

__version__ = "0.1.0"
