"""One base config, small per-environment overlays, rendered to the one file ``zenml pipeline run … -c`` takes.

``configs/base.yaml`` states every knob once (with the comments that document it); ``configs/env/<name>.yaml``
states only what differs for that environment. Rendering merges them into ``configs/<name>.yaml`` (committed, with
a header saying so; tests/test_configs.py fails when one is stale):

- mappings merge key by key; lists and scalars replace the base's value;
- a key the base does not have is an error naming its path (a typo never passes silently), except ZenML's own
  ``settings``, ``schedule`` and ``retry`` sections, which an environment may add whole or add keys to (ZenML validates them);
- ``!replace {…}`` replaces the base's mapping whole (e.g. another architecture's model keys); ``!delete`` drops
  the base's key (e.g. another orchestrator's settings); ``!add`` adds a key the base does not have, for another
  pipeline's parameter or step (e.g. configs/env/from_job.yaml's): a key the base has is an error;
- an environment may build on another's overlay (``LAYERS``): Kubeflow runs the Kubernetes run with another
  orchestrator, so configs/env/kubeflow.yaml states only the orchestrator's part.

Run ``python -m facegen.config_render`` (``make configs``) after editing; ``--check`` only reports stale files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from facegen.train.config import check_run_config

ENVIRONMENTS: tuple[str, ...] = ("local", "gpu", "gpu256", "gpu1024", "k8s", "kubeflow", "k8s_from_job")
#: Overlays applied in order over the base, per environment (default: its own overlay only).
LAYERS: dict[str, tuple[str, ...]] = {
    "kubeflow": ("k8s", "kubeflow"),
    "k8s_from_job": ("k8s", "from_job"),  # the Kubernetes run, a PyTorchJob's generator instead of train_gan
    "gpu256": ("gpu", "gpu256"),  # the GPU run at larger sides: only the side and what follows from it
    "gpu1024": ("gpu", "gpu1024"),
}
#: Sections an overlay may add where the base has none: ZenML's own settings, validated by ZenML itself.
ADDITIVE_SECTIONS: tuple[str, ...] = ("settings", "schedule", "retry")


class Replace(dict):
    """A mapping tagged ``!replace`` in an overlay: it replaces the base's mapping instead of merging into it."""


class _OverlayLoader(yaml.SafeLoader):
    pass


class Delete:
    """A key tagged ``!delete`` in an overlay: the merge drops it from the base."""


_OverlayLoader.add_constructor("!replace", lambda loader, node: Replace(loader.construct_mapping(node, deep=True)))
_OverlayLoader.add_constructor("!delete", lambda loader, node: Delete())


class Add:
    """A value tagged ``!add`` in an overlay: a key the base does not have (another pipeline's), added as it is."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _added(loader: _OverlayLoader, node: yaml.Node) -> Add:
    if isinstance(node, yaml.MappingNode):
        return Add(loader.construct_mapping(node, deep=True))
    untagged = yaml.ScalarNode(loader.resolve(yaml.ScalarNode, node.value, (True, False)), node.value)
    return Add(loader.construct_object(untagged))


_OverlayLoader.add_constructor("!add", _added)


def load_overlay(text: str) -> Any:
    """Parse an overlay (YAML with ``!replace``)."""
    return yaml.load(text, Loader=_OverlayLoader) or {}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class _RenderDumper(yaml.SafeDumper):
    """Mappings in block style (one knob a line, as in the base); lists of plain values inline."""


_RenderDumper.add_representer(
    dict, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=False)
)
_RenderDumper.add_representer(
    list,
    lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=not any(isinstance(item, (dict, list)) for item in data)
    ),
)


def merge(base: Any, overlay: Any, path: str = "", additive: bool = False) -> Any:
    """``overlay`` over ``base`` by the rules in the module doc; raises ValueError naming an unknown key's path."""
    if isinstance(overlay, Replace) or not (isinstance(base, dict) and isinstance(overlay, dict)):
        return _plain(overlay)
    merged = dict(base)
    for key, value in overlay.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, Delete):
            if key not in base:
                raise ValueError(f"overlay deletes {where!r}, which is not in the base config")
            del merged[key]
        elif isinstance(value, Add):
            if key in base:
                raise ValueError(f"overlay adds {where!r}, which the base config has: set it without !add")
            merged[key] = _plain(value.value)
        elif key in base:
            merged[key] = merge(base[key], value, where, additive or key in ADDITIVE_SECTIONS)
        elif additive or key in ADDITIVE_SECTIONS:
            merged[key] = _plain(value)
        else:
            known = sorted(base) if base else "none: the base leaves this mapping empty"
            raise ValueError(f"overlay key {where!r} is not in the base config (keys there: {known})")
    return merged


def _leading_comments(text: str) -> str:
    """The comment block an overlay opens with (what the environment is, how to run it)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def render(configs: Path, name: str) -> str:
    """The text of ``configs/<name>.yaml``: a generated-file header, the last overlay's opening comments, the merge.

    The merge is checked as a run would be (facegen.train.config.check_run_config): an overlay asking for a side its
    architecture is not built at does not render."""
    merged = yaml.safe_load((configs / "base.yaml").read_text())
    layers = LAYERS.get(name, (name,))
    for layer in layers:
        overlay_text = (configs / "env" / f"{layer}.yaml").read_text()
        merged = merge(merged, load_overlay(overlay_text))
    try:
        check_run_config(merged)
    except ValueError as error:
        raise ValueError(f"configs/{name}.yaml: {error}") from None
    sources = " + ".join(f"configs/env/{layer}.yaml" for layer in layers)
    header = (
        f"# GENERATED from configs/base.yaml + {sources} by `python -m facegen.config_render`"
        f" (make configs):\n# edit those {'two' if len(layers) == 1 else 'files'}, then re-render; the knobs are documented"
        " in configs/base.yaml.\n#\n"
    )
    body = yaml.dump(merged, Dumper=_RenderDumper, sort_keys=False, width=120, allow_unicode=True)
    return header + _leading_comments(overlay_text) + "\n" + body


def stale(configs: Path, names: tuple[str, ...] = ENVIRONMENTS) -> list[str]:
    """Rendered files that differ from what their base + overlay render to now."""
    out_of_date = []
    for name in names:
        target = configs / f"{name}.yaml"
        if not target.is_file() or target.read_text() != render(configs, name):
            out_of_date.append(str(target))
    return out_of_date


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facegen.config_render", description=__doc__.split("\n")[0])
    parser.add_argument("--configs", type=Path, default=Path("configs"), help="folder with base.yaml and env/")
    parser.add_argument("--check", action="store_true", help="render nothing; exit 1 naming stale files")
    parser.add_argument("names", nargs="*", default=list(ENVIRONMENTS), help=f"environments (default {ENVIRONMENTS})")
    args = parser.parse_args(argv)
    names = tuple(args.names)
    if args.check:
        out_of_date = stale(args.configs, names)
        for path in out_of_date:
            print(f"stale: {path} (run: python -m facegen.config_render)", file=sys.stderr)
        return 1 if out_of_date else 0
    for name in names:
        (args.configs / f"{name}.yaml").write_text(render(args.configs, name))
        print(f"rendered {args.configs / f'{name}.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
