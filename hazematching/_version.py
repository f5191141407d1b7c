"""The version of HazeMatching, recorded in every checkpoint, package and report it writes."""

__version__ = "0.2.0"
