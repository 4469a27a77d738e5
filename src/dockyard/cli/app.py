"""The invoke task collection as a program of its own: dockyard's help and usage errors.

invoke's machinery stays underneath (parsing, per-task help, shell completion); what a
user sees is dockyard's: its tasks and its few options in ``--help``, and a usage error
that exits 2 with the nearest task or option suggested.
"""

from __future__ import annotations

import difflib
import inspect
import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

from invoke.exceptions import Exit, ParseError
from invoke.parser.context import ParserContext
from invoke.program import Program

USAGE_ERROR = 2  # a command line that cannot be parsed, as for most command-line programs

# The program's own options in `--help` (invoke's other core flags are still parsed, unlisted).
OPTIONS = {
    "--help": "Show this help, or a task's (`--help TASK`), and exit.",
    "--version": "Show dockyard's version and exit.",
    "--print-completion-script": "Print the tab-completion script for bash, zsh or fish.",
}
_UNKNOWN = re.compile(r"^No idea what '(.+)' is!$")  # invoke's parser, for a word it cannot place
_NEEDS_VALUE = re.compile(r"^Flag <Argument: (\S+) .*> needed value and was not given one!$")


class DockyardProgram(Program):
    """invoke's Program with dockyard's help and usage errors."""

    def parse_core(self, argv: list[str] | None) -> None:
        with self._usage_errors():
            super().parse_core(argv)

    def parse_tasks(self) -> None:
        with self._usage_errors():
            super().parse_tasks()

    def parse_cleanup(self) -> None:
        with self._usage_errors():
            super().parse_cleanup()

    @contextmanager
    def _usage_errors(self) -> Iterator[None]:
        try:
            yield
        except ParseError as exc:
            raise Exit(f"{self.binary}: {self.usage_error(exc)}", code=USAGE_ERROR) from None
        except ValueError as exc:  # invoke casts an option's value while it parses: `--berth abc`
            raise Exit(
                f"{self.binary}: an option's value has the wrong type ({exc})\n"
                f"  -> `{self.binary} --help TASK` shows the type of each option",
                code=USAGE_ERROR,
            ) from None

    def usage_error(self, exc: ParseError) -> str:
        """invoke's parse error, with the nearest task or option when a word is unknown."""
        context: ParserContext | None = exc.context
        unknown = _UNKNOWN.match(str(exc))
        if unknown is None:
            hint = f"--help {context.name}" if context is not None and context.name else "--help"
            needs = _NEEDS_VALUE.match(str(exc))
            what = f"`--{needs[1].replace('_', '-')}` needs a value" if needs else str(exc)
            return f"{what}\n  -> see `{self.binary} {hint}`"
        word = unknown[1]
        if not word.startswith("-"):
            what, candidates = f"no task {word!r}", [*self.collection.task_names, *_aliases(self.collection.task_names)]
        elif context is not None and context.name:
            what, candidates = f"`{context.name}` has no option {word!r}", list(context.flag_names())
        else:
            what, candidates = f"no option {word!r}", list(OPTIONS)
        near = difflib.get_close_matches(word, candidates, n=1)
        return f"{what}; " + (f"did you mean `{near[0]}`?" if near else f"`{self.binary} --help` lists them")

    def print_help(self) -> None:
        print(f"Usage: {self.binary} [--options] <task> [--task-options] [-- ARGS]")
        print()
        print("Options:")
        print()
        self.print_columns([(self.initial_context.help_for(flag)[0], text) for flag, text in OPTIONS.items()])
        self.list_tasks()
        print(f"`{self.binary} --help TASK` shows a task's options.")

    def task_list_opener(self, extra: str = "") -> str:
        return "Tasks"

    def print_task_help(self, name: str) -> None:
        context = self.parser.contexts[name]
        print(f"Usage: {self.binary} {name}" + (" [--options]" if context.flags else ""))
        print()
        print(textwrap.indent(inspect.getdoc(self.collection[name]) or "", self.leading_indent))
        print()
        print("Options:")
        print()
        self.print_columns(context.help_tuples() or [("none", "")])


def _aliases(names: dict[str, list[str]]) -> list[str]:
    return [alias for aliases in names.values() for alias in aliases]
