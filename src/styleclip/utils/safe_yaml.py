"""YAML that people share (job files, presets, probe lists), read as data with a bound on what it may expand to.

PyYAML's safe loader builds no objects but plain ones; on top of it every node is counted at its expanded size
(an alias adds its whole anchored tree), so an alias bomb ("billion laughs": nested aliases that expand to
billions of nodes) is refused while it is read, not after it filled the memory.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError

MAX_YAML_NODES = 100_000


class TooLarge(Exception):
    """The YAML expands past :data:`MAX_YAML_NODES` or refers to itself."""


def bounded_loader(yaml, max_nodes: int = MAX_YAML_NODES):
    """PyYAML's safe loader class counting each node at its expanded size."""

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self._sizes: dict[int, int] = {}

        def compose_node(self, parent, index):
            alias = self.check_event(yaml.AliasEvent)
            node = super().compose_node(parent, index)
            if alias:
                if id(node) not in self._sizes:
                    raise TooLarge("an alias refers to the node that holds it (a recursive YAML structure)")
                return node
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            else:
                children = []
            size = 1 + sum(self._sizes[id(c)] for c in children)
            if size > max_nodes:
                raise TooLarge(f"expands to more than {max_nodes} YAML nodes (aliases counted at their size)")
            self._sizes[id(node)] = size
            return node

    return BoundedLoader


def read_yaml(text: str, where: str, advice: str = "") -> Any:
    """``text`` parsed as bounded safe YAML (JSON is YAML); every failure one :class:`UsageError` line starting with
    ``where`` (``advice``: what to do when it is too large, after the reason)."""
    try:
        import yaml
    except ImportError:  # a declared dependency
        raise UsageError(f"{where}: reading YAML needs PyYAML: pip install pyyaml") from None
    loader = bounded_loader(yaml)(text)
    try:
        return loader.get_single_data()
    except TooLarge as exc:
        raise UsageError(f"{where}: {exc}{'; ' + advice if advice else ''}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise UsageError(f"{where}: not valid YAML ({at}{' '.join(str(exc.problem or exc.context).split())})") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise UsageError(f"{where}: not valid YAML ({type(exc).__name__})") from None
    finally:
        loader.dispose()
