"""``facegen-attributes``: our own gender / age_bin / ethnicity classifier (MobileNetV2 fine-tuned from ImageNet).

- :mod:`.network`: the network (torchvision MobileNetV2 backbone, offline ImageNet weights, three heads);
- :mod:`.data`: faces packed as uint8 tensors, label encoding, the seeded held-out split;
- :mod:`.training`: frozen-then-unfrozen fine-tuning;
- :mod:`.metrics`: accuracy, balanced accuracy, confusion matrices;
- :mod:`.bundle`: weights + spec on disk (no pickle of the network);
- :mod:`.inference`: :class:`AttributeClassifier` on tensors or files, manifest tagging and label audit;
- :mod:`.registry`: the MLflow pyfunc, logged and loaded by alias (registered through
  :mod:`facegen.registry.model_registry`, named in :mod:`facegen.registry.names`).
"""

from facegen.attributes_model.network import HEADS

__all__ = ["HEADS"]
