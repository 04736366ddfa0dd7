from __future__ import annotations

from wafile import errors
from wafile.errors import ClientError, WafileError, catalogue


def test_every_error_has_a_unique_code_a_status_and_a_title() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, WafileError)
    ]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert set(catalogue()) == set(codes)
    for cls in classes:
        assert 400 <= cls.status <= 599
        assert cls.title() and not cls.title().endswith(".")
        if issubclass(cls, ClientError):
            assert cls.status < 500, cls


def test_tree_is_drawn_in_the_docstring() -> None:
    doc = errors.__doc__ or ""
    for code, cls in catalogue().items():
        assert cls.__name__ in doc and code in doc, code


def test_detail_defaults_to_title_and_extra_is_kept() -> None:
    exc = errors.ValidationFailed(errors=[{"loc": ["to"]}])
    assert exc.detail == "The request is not valid"
    assert exc.extra == {"errors": [{"loc": ["to"]}]}
    assert str(errors.NotFound("gone")) == "gone"
