"""HazeMatching: dehaze widefield fluorescence images with guided conditional flow matching.

The public API mirrors the command line: `simulate`, `train`, `predict`, each taking validated
configuration objects.
"""

__version__ = "0.1.0"
