"""Where a key is in a YAML file: the line of the node at a path like ("model_list", 0,
"params", "rpm"), from PyYAML's node marks, so config errors can name the line."""

from __future__ import annotations

from collections.abc import Sequence

import yaml

__all__ = ["LineFinder"]


class LineFinder:
    def __init__(self, text: str) -> None:
        self._root = yaml.compose(text, Loader=yaml.SafeLoader)

    def line(self, path: Sequence[str | int]) -> int | None:
        """The 1-based line of the deepest node along ``path`` (a key's own line when the
        path ends at a key); None for an empty file."""
        node = self._root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in path:
            child = self._child(node, part)
            if child is None:
                break
            key, node = child
            line = (key or node).start_mark.line + 1
        return line

    @staticmethod
    def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    return key, value
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            return None, node.value[part]
        return None
