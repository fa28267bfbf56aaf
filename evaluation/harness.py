"""lm-evaluation-harness task files that read local data, to run the real harness offline beside our `lm-eval` protocol.

The installed harness's own recipes (`lambada_openai`, `wikitext`) are copied under a new task name with the data set
swapped for a local jsonl file (`{"text": ...}` per LAMBADA passage, `{"page": ...}` per wikitext page); the
recipe's Python helpers are copied beside them. Run the harness with `HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1` and
`TaskManager(include_path=folder)`. lm_eval is an optional (test) dependency, imported only here.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

RECIPES = {"lambada_openai": "lambada/lambada_openai.yaml", "wikitext": "wikitext/wikitext.yaml"}


def installed_recipe(recipe: str) -> Path:
    try:
        import lm_eval
    except ImportError as error:
        raise ImportError("lm_eval (lm-evaluation-harness) is not installed: pip install -e '.[test]'") from error
    if recipe not in RECIPES:
        raise ValueError(f"recipe {recipe!r}: known {', '.join(RECIPES)}")
    return Path(lm_eval.__file__).parent / "tasks" / RECIPES[recipe]


def write_local_task(recipe: str, task: str, data: str | Path, folder: str | Path) -> Path:
    """folder/<task>.yaml: the installed recipe named `task`, its test split read from the jsonl file `data`."""
    source, folder = installed_recipe(recipe), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^tag:\n(  - .*?\n)+", "", text)  # not part of the harness's own task groups
    text = re.sub(r"(?m)^task: .*$", f"task: {task}", text)
    text = re.sub(r"(?m)^(dataset_name|training_split|validation_split): .*\n", "", text)
    text = re.sub(
        r"(?m)^dataset_path: .*$",
        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {json.dumps(str(Path(data).resolve()))}",
        text,
    )
    for helper in source.parent.glob("*.py"):  # `!function` helpers resolve beside the YAML
        shutil.copy(helper, folder / helper.name)
    path = folder / f"{task}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write_pages(pages: list[str], path: str | Path) -> Path:
    """A jsonl file of wikitext-recipe documents, one `{"page": ...}` per line."""
    path = Path(path)
    path.write_text("".join(json.dumps({"page": p}) + "\n" for p in pages), encoding="utf-8")
    return path
