"""Keep deploy/templates/stack.yaml and account.yaml in step with their sources.

The state machine definitions (deploy/statemachines/*.asl.json), the EventBridge patterns
(deploy/events.py, where the stack's own plant and endpoint are placeholders, written here as
CloudFormation expressions) and the IAM policies both templates grant (deploy/policies/*.json) live in one
place each; the templates carry copies between `# BEGIN GENERATED <source>` and `# END GENERATED`
markers, inline so that cfn-lint checks the state machines too (rule E3601). `python -m deploy.stack`
rewrites the copies; a test fails while they differ.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from deploy.events import RULE_PATTERNS, STACK_VALUES

DEPLOY_DIR = Path(__file__).resolve().parent
TEMPLATE_PATH = DEPLOY_DIR / "templates" / "stack.yaml"
#: What an environment in its own account holds (the roles the central workflows act with there).
ACCOUNT_TEMPLATE_PATH = DEPLOY_DIR / "templates" / "account.yaml"
GENERATED_TEMPLATES = (TEMPLATE_PATH, ACCOUNT_TEMPLATE_PATH)

_BLOCK = re.compile(
    r"^(?P<indent>[ ]*)# BEGIN GENERATED (?P<source>\S+)\n.*?^(?P=indent)# END GENERATED$",
    re.MULTILINE | re.DOTALL,
)


def source_document(source: str) -> dict:
    """`statemachines/<name>.asl.json` (a file under deploy/) or `events:<RuleName>`."""
    if source.startswith("events:"):
        return RULE_PATTERNS[source.removeprefix("events:")]
    return json.loads((DEPLOY_DIR / source).read_text())


def render_stack(text: str) -> str:
    def fill(match: re.Match[str]) -> str:
        indent, source = match["indent"], match["source"]
        body = json.dumps(source_document(source), indent=2)
        for placeholder, expression in STACK_VALUES.items():
            body = body.replace(json.dumps(placeholder), expression)
        lines = [f"{indent}# BEGIN GENERATED {source}", *(indent + line for line in body.splitlines())]
        return "\n".join([*lines, f"{indent}# END GENERATED"])

    return _BLOCK.sub(fill, text)


def main() -> None:
    for path in GENERATED_TEMPLATES:
        text = path.read_text()
        rendered = render_stack(text)
        if rendered != text:
            path.write_text(rendered)
            print(f"updated {path}")
        else:
            print(f"{path} is up to date")


if __name__ == "__main__":
    main()
