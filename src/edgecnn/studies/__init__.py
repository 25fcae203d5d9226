"""Studies: pipelines that combine packages and return typed results.

:mod:`~edgecnn.studies.zoo` (the CNN-zoo compute-vs-bandwidth study),
:mod:`~edgecnn.studies.casestudy` (the seeds' ResNet-50 accelerator case),
:mod:`~edgecnn.studies.predicted` (roofline prediction vs ONNX Runtime measurement) and
:mod:`~edgecnn.studies.demo` (the end-to-end demo). Studies return results; the CLI writes files
and the HTML report.
"""
