"""A registry of plugins of one kind (models, strategies) by name, in registration order: the
order in which CLI choices, experiments and tables list them."""
from __future__ import annotations


class Registry:
    def __init__(self, kind: str):
        self.kind, self._items = kind, {}

    def register(self, item):
        """Add item under item.name; another item already under that name is an error."""
        if item.name in self._items and self._items[item.name] != item:
            raise ValueError(f"{self.kind} {item.name!r} is already registered")
        self._items[item.name] = item
        return item

    def get(self, name: str):
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}: choose one of {', '.join(self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list:
        return list(self._items.values())

    def __contains__(self, name) -> bool:
        return name in self._items

    def __delitem__(self, name):
        del self._items[name]
