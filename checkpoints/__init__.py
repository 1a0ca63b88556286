"""The embedded weights, importable as `musicgen_checkpoints`: the repo's checkpoints/ folder.

pyproject.toml maps this folder to the package `musicgen_checkpoints` (`[tool.setuptools.package-dir]`) and
ships its weights and configs as package data, so a wheel or a plain `pip install .` carries the default
model (default/), the instrument classifier (analysers/instrument/) and the independent timbre analyser
(analysers/timbre/). `musicgen.api.DEFAULT_CHECKPOINT`
finds them with `importlib.resources.files("musicgen_checkpoints")`. This file makes the folder a regular
package: a namespace package's `files()` fails under an editable install on Python 3.11.
"""
