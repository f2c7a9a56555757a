"""Evaluation: judge classifiers, generation metrics (FID/IS/accuracy), pitch accuracy, vocoder distances.

Import the submodules directly (`audiodiff.evaluation.judge`, `.metrics`, `.pitch`, `.vocoder_metrics`,
`.report`); this package import stays light.
"""
