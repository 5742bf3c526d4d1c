"""``csvimport notice``: what to tell people about their passwords, from templates.

Renders, from jinja2 templates in ``templates/``, the message for users who must reset
their password (plain text and HTML, ready for an email or help-centre page) and the app
team's checklist (handle ``PasswordResetRequiredException`` and ``NotAuthorizedException``
at sign-in by starting the forgot-password flow; users with an imported hash sign in as
before). Fields come from options or a small TOML file; counts from the report's results.

When the run left users to the user migration trigger (``Outcome.DEFERRED``), those users
get a message of their own that tells them to sign in as before with their old password
(never to reset), and the checklist tells the app team what the trigger needs of the app:
USER_PASSWORD_AUTH instead of SRP until the migration window ends, a failed migration
(UserNotFoundException, NotAuthorizedException) handled as a wrong password, and the
forgot-password flow kept. A run whose every user is deferred gets no reset message.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import jinja2

from csvimport.errors import ConfigError
from csvimport.files import replaced_private
from csvimport.outcomes import Outcome, Password
from csvimport.resources import templates_dir
from csvimport.rundir import RunDir, iter_results

NOTICE_DIR = "notice"
# output file -> template, for the users who must reset (and the app team)
TEMPLATES = {
    "user-message.txt": "notice-user.txt.j2",
    "user-message.html": "notice-user.html.j2",
    "app-team-checklist.md": "notice-app-team.md.j2",
}
# for the users the migration trigger moves at their first sign-in, when the run has any
DEFERRED_TEMPLATES = {
    "deferred-user-message.txt": "notice-deferred-user.txt.j2",
    "deferred-user-message.html": "notice-deferred-user.html.j2",
}
RESET_MESSAGES = ("user-message.txt", "user-message.html")


@dataclass(frozen=True)
class NoticeFields:
    """What the messages say that csvimport cannot know."""

    product: str = ""  # the product's name as users know it
    support: str = ""  # how users reach support, e.g. an email address or a URL
    sign_in_url: str = ""
    migrated_on: str = ""  # a date, as users should read it
    reset_by: str = ""  # a date by which users should reset, if there is one
    code_sent: bool = False  # a `csvimport resets` wave already sent users a code
    # when the user migration trigger is removed (deferred users must have signed in by then)
    migration_ends: str = ""

    @classmethod
    def load(cls, path: Path) -> NoticeFields:
        """Read the fields from a TOML file (keys as the field names)."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist", hint=FIELDS_HINT) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text", hint=FIELDS_HINT) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}", hint=FIELDS_HINT) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=FIELDS_HINT) from None
        known = {f.name: type(f.default) for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{path}: unknown notice fields {unknown}", hint=FIELDS_HINT)
        for name, value in data.items():
            if type(value) is not known[name]:
                what = "true or false" if known[name] is bool else "text in quotes"
                raise ConfigError(f"{path}: {name} must be {what}, not {value!r:.40}",
                                  hint=FIELDS_HINT)  # fmt: skip
        return cls(**data)

    def merged(self, **overrides: Any) -> NoticeFields:
        """These fields with every given (not None) override applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


FIELDS_HINT = (
    "Give --product and --support (and optionally --sign-in-url, --migrated-on, --reset-by, "
    "--migration-ends), "
    'or a TOML file with those keys, e.g. product = "Acme", support = "help@acme.example".'
)


def _counts(run: RunDir) -> dict[str, int]:
    # One result at a time: a run of millions of users never holds them all.
    results = iter_results(run, needed_for="the checklist counts come from the report")
    passwords: Counter[Password] = Counter()
    deferred = 0
    for r in results:
        if r.outcome is Outcome.IMPORTED:
            passwords[r.password] += 1
        elif r.outcome is Outcome.DEFERRED:
            deferred += 1
    return {"imported": passwords.total(), "hash": passwords[Password.HASH],
            "reset": passwords[Password.RESET] + passwords[Password.NO_CHANNEL],
            "no_channel": passwords[Password.NO_CHANNEL], "deferred": deferred}  # fmt: skip


def render_notices(run: RunDir, notice: NoticeFields) -> dict[str, str]:
    """The rendered messages, by output file name."""
    missing = [name for name in ("product", "support") if not getattr(notice, name).strip()]
    if missing:
        raise ConfigError(f"the notices need: {', '.join(missing)}", hint=FIELDS_HINT)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        # HTML is escaped; plain text and Markdown are not HTML and must stay as written.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                            default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )  # fmt: skip
    counts = _counts(run)
    context = {
        **{f.name: getattr(notice, f.name) for f in fields(notice)},
        "counts": counts,
        "run_id": run.run_id,
        "pool_id": run.user_pool_id,
        "pool_name": run.snapshot.name,
    }
    templates = dict(TEMPLATES)
    if counts["deferred"]:
        templates.update(DEFERRED_TEMPLATES)
        if not counts["reset"]:  # nobody to send a reset message to: none is written
            for name in RESET_MESSAGES:
                del templates[name]
    return {out: env.get_template(name).render(context) for out, name in templates.items()}


def write_notices(run: RunDir, notice: NoticeFields, out_dir: Path | None = None) -> list[Path]:
    """Write the messages into ``out_dir`` (default RUN_DIR/notice); return their paths."""
    rendered = render_notices(run, notice)
    directory = out_dir or run.path / NOTICE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered.items():
        path = directory / name
        with replaced_private(path) as f:
            f.write(text)
        paths.append(path)
    return paths
