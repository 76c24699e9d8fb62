"""``facegen-attributes``: our own gender / age_bin / ethnicity classifier (MobileNetV2 fine-tuned from ImageNet).

- :mod:`.network`: the network (torchvision MobileNetV2 backbone, offline ImageNet weights, three heads);
- :mod:`.data`: faces packed as uint8 tensors, label encoding, the seeded held-out split;
- :mod:`.training`: frozen-then-unfrozen fine-tuning;
- :mod:`.metrics`: accuracy, balanced accuracy, confusion matrices;
- :mod:`.bundle`: weights + spec on disk (no pickle of the network);
- :mod:`.inference`: :class:`AttributeClassifier` on tensors or files, manifest tagging and label audit;
- :mod:`.registry`: MLflow pyfunc logging, registration under ``facegen-attributes``, resolution by alias.
"""

from facegen.attributes_model.network import HEADS

MODEL_NAME = "facegen-attributes"
PRODUCTION_ALIAS = "production"

__all__ = ["HEADS", "MODEL_NAME", "PRODUCTION_ALIAS"]
