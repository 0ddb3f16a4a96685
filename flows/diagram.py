"""Mermaid diagrams of the flows, for reviewers who do not read Python.

``python -m flows.diagram`` rewrites the ``.mmd`` files beside the definitions; a test fails
when a diagram no longer matches its flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flows.definitions import FLOWS
from flows.model import Flow


def _node(key: str) -> str:
    return key.replace(".", "_").replace("@", "do_")


def mermaid(flows: Iterable[Flow]) -> str:
    lines = ["flowchart TD"]
    for flow in flows:
        lines.append(f"  subgraph {flow.name}")
        for step in flow.steps:
            shape = f'{_node(step.key)}["{step.key}<br/><i>{step.prompt}</i>"]'
            lines.append(f"    {shape}")
        lines.append("  end")
        for step in flow.steps:
            for option in step.options:
                target = option.goto or (None if step.is_question else step.next)
                if target:
                    condition = f" ({option.only_if})" if option.only_if else ""
                    lines.append(f"  {_node(step.key)} -->|{option.key}{condition}| {_node(target)}")
            if step.next and (step.is_question or step.dynamic):
                label = "answer / skip" if step.skippable else "answer"
                lines.append(f"  {_node(step.key)} -->|{label}| {_node(step.next)}")
            if step.dynamic:
                lines.append(f"  {_node(step.key)} -.->|options: {step.dynamic}| {_node(step.key)}")
    return "\n".join(lines) + "\n"


def write(folder: Path = Path(__file__).parent) -> list[Path]:
    written = []
    for name in sorted({f.diagram for f in FLOWS if f.diagram}):
        path = folder / name
        path.write_text(mermaid([f for f in FLOWS if f.diagram == name]), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
