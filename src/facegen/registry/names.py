"""The names of facegen's two registered models and their aliases, written once (the CLI and the service's settings
read them without importing MLflow or torch)."""

#: The face generator: one version per training run (:mod:`facegen.registry.model_registry`).
GENERATOR_MODEL_NAME = "facegen-generator"
#: Passed the automatic gates (set by ``deploy_gate``, or by ``facegen human-eval import``).
CANDIDATE_ALIAS = "candidate"
#: Approved and served; moved only by a person (``facegen approve`` or the MLflow UI).
CHAMPION_ALIAS = "champion"

#: The gender / age_bin / ethnicity classifier the tagging and fairness steps load.
ATTRIBUTES_MODEL_NAME = "facegen-attributes"
#: Beat the baseline (set by ``train_attribute_model``); what ``tag_attributes`` and ``evaluate_fairness`` load.
ATTRIBUTES_ALIAS = "production"
