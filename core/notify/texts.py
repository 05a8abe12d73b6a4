"""The notice's texts as files: the built-in templates (core/notify/templates/), the
user's folder that overrides them file by file (``notices.templates``), the per-language
words (subjects, greetings, dates), and one sentence naming file and line when a
template the user edited is broken.

Files, per kind (notice, internal, final) and language: ``{kind}.{lang}.txt.j2`` (the
text part), ``{kind}.{lang}.html.j2`` (the HTML part, extending ``base.html.j2``) and
``words.{lang}.yaml``. A kind exists in a language when both of its files do.
"""

from __future__ import annotations

import re
import shutil
import traceback
import unicodedata
from pathlib import Path
from typing import Any

import jinja2
import yaml

from ..errors import ConfigError, SwitchoverError

BUILTIN = Path(__file__).resolve().parent / "templates"
_KIND_FILE = re.compile(r"(notice|internal|final)\.([a-z]{2,3})\.(txt|html)\.j2")


class Texts:
    """Template environments over the user's folder (first) and the built-ins."""

    def __init__(self, user_dir: Path | None) -> None:
        self.user_dir = user_dir if user_dir and user_dir.is_dir() else None
        folders = [str(p) for p in (self.user_dir, BUILTIN) if p]
        loader = jinja2.FileSystemLoader(folders, encoding="utf-8")
        common: dict[str, Any] = dict(loader=loader, undefined=jinja2.StrictUndefined,
                                      trim_blocks=True, lstrip_blocks=True,
                                      keep_trailing_newline=True)
        self.html = jinja2.Environment(autoescape=True, **common)
        self.text = jinja2.Environment(autoescape=False, **common)
        for env in (self.html, self.text):
            env.filters["direction"] = direction
        self._words: dict[str, dict[str, Any]] = {}
        self._said: dict[str, jinja2.Template] = {}

    def kinds(self) -> dict[str, tuple[str, ...]]:
        """kind → the languages with both its files, from the user's folder or built in."""
        found: dict[tuple[str, str], set[str]] = {}
        for folder in (self.user_dir, BUILTIN):
            if folder is None:
                continue
            for p in folder.iterdir():
                m = _KIND_FILE.fullmatch(p.name)
                if m:
                    found.setdefault((m[1], m[2]), set()).add(m[3])
        out: dict[str, list[str]] = {}
        for (kind, lang), parts in sorted(found.items()):
            if parts == {"txt", "html"}:
                out.setdefault(kind, []).append(lang)
        return {k: tuple(v) for k, v in out.items()}

    def path_of(self, name: str) -> Path:
        """Where a template or words file is read from (the user's copy first)."""
        if self.user_dir and (self.user_dir / name).is_file():
            return self.user_dir / name
        return BUILTIN / name

    def render(self, part: str, name: str, context: dict[str, Any]) -> str:
        """Render template ``name`` ('html' or 'text' environment); a problem in it is a
        ConfigError naming the file and line."""
        env = self.html if part == "html" else self.text
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"The notice template {e.filename or name} has an error at line "
                              f"{e.lineno}: {_clean(e.message or 'syntax error')}; fix it or delete the file "
                              f"to use the built-in text.") from None
        except jinja2.TemplateNotFound as e:
            raise ConfigError(f"The notice template {name} needs {e.name}, which is in neither "
                              f"{self.user_dir or 'the user folder'} nor the built-ins.") from None
        except SwitchoverError:
            raise
        except Exception as e:     # noqa: BLE001 — any failure inside a user's template
            where, line = _template_frame(e, self.path_of(name))
            raise ConfigError(f"The notice template {where} failed at line {line}: "
                              f"{_clean(str(e))}.") from None

    def words(self, lang: str) -> dict[str, Any]:
        """The language's words over the English ones (a partial file still works)."""
        if lang not in self._words:
            base = _read_words(BUILTIN / "words.en.yaml")
            for path in dict.fromkeys((BUILTIN / f"words.{lang}.yaml", self.path_of(f"words.{lang}.yaml"))):
                if path.is_file():
                    base = _merge(base, _read_words(path))
            self._words[lang] = base
        return self._words[lang]

    def say(self, lang: str, key: str, context: dict[str, Any]) -> str:
        """One words entry ('subject.notice', 'greeting.named', ...) rendered as text."""
        value: Any = self.words(lang)
        for k in key.split("."):
            value = value.get(k, "") if isinstance(value, dict) else ""
        source = self.path_of(f"words.{lang}.yaml")
        try:
            compiled = self._said.get(str(value))
            if compiled is None:      # compiled once: a campaign says these for every person
                compiled = self._said[str(value)] = self.text.from_string(str(value))
            return " ".join(compiled.render(context).split())
        except jinja2.TemplateError as e:
            raise ConfigError(f"The words file {source} has an error in '{key}': "
                              f"{_clean(str(e))}.") from None


def direction(text: str) -> str:
    """'rtl' when the first strong character of ``text`` is right-to-left (Arabic,
    Hebrew), else 'ltr': a signature line keeps its own direction inside RTL text."""
    for ch in str(text):
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return "ltr"


def _read_words(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"The words file {path} is not valid YAML{line}: "
                          f"{getattr(e, 'problem', None) or 'invalid YAML'}.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Cannot read the words file {path}: {e}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"The words file {path} must be a mapping of keys (subject, greeting, ...).")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _template_frame(exc: BaseException, fallback: Path) -> tuple[str, int | str]:
    """The innermost template file and line of a rendering error (jinja2 rewrites the
    traceback so template frames carry the template's own file and line)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return frame.filename, frame.lineno or "?"
    return str(fallback), "?"


def _clean(text: str) -> str:
    return " ".join(text.split()).rstrip(".")


def write_templates(directory: Path, *, force: bool = False) -> list[Path]:
    """Write the built-in templates and words files into ``directory`` for editing (created
    when missing) and return the files written. When one is already there nothing is
    written and a ConfigError (exit 2) names it, unless ``force`` (then they are replaced)."""
    sources = sorted(p for p in BUILTIN.iterdir() if p.is_file() and not p.name.startswith("."))
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file; give a folder for the notice templates.")
    if not force:
        present = [directory / p.name for p in sources if (directory / p.name).exists()]
        if present:
            raise ConfigError(f"{len(present)} template file(s) already exist in {directory} "
                              f"(e.g. {present[0].name}); edit them, or pass --force to "
                              f"overwrite them with the built-ins.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for p in sources:
            shutil.copyfile(p, directory / p.name)
            written.append(directory / p.name)
    except OSError as e:
        raise ConfigError(f"Cannot write the templates into {directory}: {e.strerror}.") from None
    return written
