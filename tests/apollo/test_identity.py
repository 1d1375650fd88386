"""Joining Apollo's matches back to the people asked about, whatever the response order."""

import hashlib

from crmsync_plugins.apollo.identity import join_answers, norm_linkedin

ADA = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}
BOB = {"first_name": "Bob", "last_name": "Stone", "domain": "stone.io"}
CY = {"linkedin_url": "https://www.linkedin.com/in/cy/"}


def person(**fields: object) -> dict:
    return {"id": f"p-{fields.get('first_name', 'x')}", **fields}


def test_positional_with_nulls_for_misses() -> None:
    answers = [person(first_name="Ada", email="ada@example.com"), None, person(linkedin_url="linkedin.com/in/cy")]
    joined = join_answers([ADA, BOB, CY], answers)
    assert sorted(joined) == [0, 2]


def test_misses_omitted_and_order_shuffled() -> None:
    answers = [person(linkedin_url="http://linkedin.com/in/cy"), person(first_name="Ada", email="ADA@example.com ")]
    joined = join_answers([ADA, BOB, CY], answers)
    assert joined[0]["first_name"] == "Ada"
    assert joined[2]["linkedin_url"] == "http://linkedin.com/in/cy"
    assert 1 not in joined


def test_name_and_domain_join() -> None:
    bob = person(name="Bob Stone", organization={"primary_domain": "stone.io"})
    assert join_answers([ADA, BOB], [bob]) == {1: bob}


def test_hashed_email_join() -> None:
    hashed = {"hashed_email": hashlib.sha256(b"ada@example.com").hexdigest()}
    ada = person(first_name="Ada", email="ada@example.com")
    assert join_answers([BOB, hashed], [ada]) == {1: ada}
    md5 = {"hashed_email": hashlib.md5(b"ada@example.com").hexdigest()}
    assert join_answers([md5], [ada]) == {0: ada}


def test_positional_answer_that_contradicts_is_not_joined() -> None:
    stranger = person(first_name="Zed", email="zed@else.com")
    joined = join_answers([ADA], [stranger])
    assert joined == {-1: stranger}


def test_duplicate_people_each_get_one_answer() -> None:
    first, second = person(email="ada@example.com"), person(email="ada@example.com")
    joined = join_answers([ADA, BOB, ADA], [first, second])
    assert joined[0] is first and joined[2] is second


def test_linkedin_normalisation() -> None:
    assert norm_linkedin("HTTPS://WWW.LinkedIn.com/in/Cy/") == norm_linkedin("linkedin.com/in/cy")


def test_colleagues_with_the_same_name_are_different_people() -> None:
    from crmsync_plugins.apollo.identity import person_key

    one = {"first_name": "Ava", "last_name": "Muller", "email": "ava@orchard.edu", "domain": "orchard.edu"}
    two = {**one, "email": "ava.muller@orchard.edu"}
    assert person_key(one) != person_key(two)
    assert person_key({"first_name": "Ava", "last_name": "Muller", "domain": "orchard.edu"}).startswith("name+")
