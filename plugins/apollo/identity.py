"""Normalised identities of people, used to join Apollo's answers back to the records that asked."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

_LINKEDIN_PREFIX = re.compile(r"^(https?://)?([a-z]{2,3}\.)?(www\.)?", re.IGNORECASE)


def norm(value: Any) -> str:
    """Trimmed, lower-cased text; empty for missing values."""
    return str(value).strip().lower() if value not in (None, "") else ""


def norm_linkedin(url: Any) -> str:
    """``https://www.linkedin.com/in/x/`` and ``linkedin.com/in/x`` are the same profile."""
    text = norm(url)
    return _LINKEDIN_PREFIX.sub("", text).rstrip("/") if text else ""


def email_hashes(email: str) -> tuple[str, str]:
    """The MD5 and SHA-256 hex digests Apollo accepts as ``hashed_email``, sorted."""
    data = email.encode()
    md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
    return (md5, sha256) if md5 < sha256 else (sha256, md5)


def full_name(person: Mapping[str, Any]) -> str:
    """``name``, else ``first_name last_name``, normalised."""
    name = norm(person.get("name"))
    if not name:
        name = " ".join(part for part in (norm(person.get("first_name")), norm(person.get("last_name"))) if part)
    return " ".join(name.split())


def _id_keys(person: Mapping[str, Any]) -> list[str]:
    return ["id:" + norm(person["id"])] if person.get("id") else []


def _email_keys(person: Mapping[str, Any]) -> list[str]:
    email = norm(person.get("email"))
    return ["email:" + email] if email else []


def _hash_keys(person: Mapping[str, Any]) -> list[str]:
    email = norm(person.get("email"))
    keys = ["hash:" + digest for digest in email_hashes(email)] if email else []
    if person.get("hashed_email"):
        keys.append("hash:" + norm(person["hashed_email"]))
    return keys


def _linkedin_keys(person: Mapping[str, Any]) -> list[str]:
    linkedin = norm_linkedin(person.get("linkedin_url"))
    return ["linkedin:" + linkedin] if linkedin else []


def _name_keys(person: Mapping[str, Any]) -> list[str]:
    name = full_name(person)
    if not name:
        return []
    organization = person.get("organization") or {}
    domains = {norm(person.get("domain")), norm(organization.get("primary_domain"))}
    companies = {norm(person.get("organization_name")), norm(organization.get("name"))}
    return [f"name+domain:{name}|{d}" for d in sorted(domains) if d] + [
        f"name+org:{name}|{c}" for c in sorted(companies) if c
    ]


#: The kinds of identity keys, strongest first; a key of one kind never equals a key of another (its prefix).
_KINDS: tuple[Callable[[Mapping[str, Any]], list[str]], ...] = (
    _id_keys,
    _email_keys,
    _hash_keys,
    _linkedin_keys,
    _name_keys,
)


def identity_keys(person: Mapping[str, Any]) -> list[str]:
    """Every key under which a person (a request detail or an Apollo answer) can be recognised, strongest first.

    Details carry ``domain``/``organization_name``; Apollo's person carries ``organization{...}``.
    """
    return [key for kind in _KINDS for key in kind(person)]


class _QuestionIndex:
    """Positions of the questions by identity key, built one kind of key at a time, when an answer first needs
    that kind: most answers are placed by their id or email, so hashes and names are rarely computed."""

    def __init__(self, questions: Sequence[Mapping[str, Any]]) -> None:
        self.questions = questions
        self.positions: dict[str, list[int]] = {}
        #: Kind → whether any question has a key of that kind, once its keys are in ``positions``.
        self.built: dict[Callable[[Mapping[str, Any]], list[str]], bool] = {}

    def find(self, answer: Mapping[str, Any], taken: Mapping[int, Any]) -> int | None:
        """The first unanswered question sharing the answer's strongest key (in :func:`identity_keys` order)."""
        for kind in _KINDS:
            if self.built.get(kind) is False:  # no question has this kind of key (most ask without an id)
                continue
            keys = kind(answer)
            if not keys:
                continue
            if kind not in self.built:
                self.built[kind] = self._add(kind)
            for key in keys:
                for position in self.positions.get(key, ()):
                    if position not in taken:
                        return position
        return None

    def _add(self, kind: Callable[[Mapping[str, Any]], list[str]]) -> bool:
        """Index the questions' keys of one kind; whether there were any."""
        found = False
        for position, question in enumerate(self.questions):
            for key in kind(question):
                self.positions.setdefault(key, []).append(position)
                found = True
        return found


def person_key(person: Mapping[str, Any]) -> str:
    """The strongest identity of a request detail: the one key two different people can never share.

    Used to pay once per person (the cache, duplicate people in a run). Weaker keys such as name + company
    are good enough to pair an answer with its question, but two colleagues may share them.
    """
    # The first of identity_keys(), without computing the weaker keys (and the email's hashes) after it.
    if person.get("id"):
        return "id:" + norm(person["id"])
    email = norm(person.get("email"))
    if email:
        return "email:" + email
    keys = identity_keys(person)
    return keys[0] if keys else ""


def join_answers(questions: Sequence[Mapping[str, Any]], answers: Iterable[Mapping[str, Any] | None]) -> dict[int, Any]:
    """Pair Apollo's answers with the questions (request items) they answer: ``{question index: answer}``.

    Apollo does not document that answers come back in request order, so an answer is matched by identity
    (id, email or its hashes, LinkedIn URL, name + company); its position is used only when identities say
    nothing, and never when they contradict it. Slim answers (waterfall mode: no email, no organization) that
    fit nothing else are paired by full name when exactly one unanswered question carries that name.
    Answers that fit no question are returned under negative keys (``-1``, ``-2``...) so the caller can report
    them instead of dropping them.
    """
    answers = list(answers)
    positional = len(answers) == len(questions)
    index = _QuestionIndex(questions)
    joined: dict[int, Any] = {}
    unplaced: list[Mapping[str, Any]] = []
    for position, answer in enumerate(answers):
        if answer is None:
            continue
        target = index.find(answer, joined)
        if target is None and positional and position not in joined and not _contradicts(questions[position], answer):
            target = position
        if target is None:
            unplaced.append(answer)
        else:
            joined[target] = answer
    orphans = 0
    for answer in unplaced:
        target = _by_name(questions, answer, joined)
        if target is None:
            orphans += 1
            target = -orphans
        joined[target] = answer
    return joined


def _by_name(questions: Sequence[Mapping[str, Any]], answer: Mapping[str, Any], taken: Mapping[int, Any]) -> int | None:
    """The one unanswered question with the answer's full name and no contradicting identifier, if exactly one."""
    name = full_name(answer)
    if not name:
        return None
    candidates = [
        position
        for position, question in enumerate(questions)
        if position not in taken and full_name(question) == name and not _contradicts(question, answer)
    ]
    return candidates[0] if len(candidates) == 1 else None


def _contradicts(question: Mapping[str, Any], answer: Mapping[str, Any]) -> bool:
    """True when the two carry the same kind of identifier with different values."""
    for field, normalise in (("email", norm), ("linkedin_url", norm_linkedin), ("id", norm)):
        mine, theirs = normalise(question.get(field)), normalise(answer.get(field))
        if mine and theirs and mine != theirs:
            return True
    return False
