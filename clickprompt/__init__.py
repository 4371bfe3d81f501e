"""ClickPrompt: CTR models are strong prompt generators for adapting language models to CTR prediction.

Reference implementation of Lin et al., WWW'24. See README.md for the map of the package.
"""

__version__ = "0.1.0"
