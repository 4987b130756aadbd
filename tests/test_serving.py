import pytest

from course.serving import EmptyBatchError, InvalidInputError, InvalidTypeError, MissingFieldError, UnknownCategoryError


@pytest.mark.parametrize("error", [MissingFieldError, InvalidTypeError, UnknownCategoryError, EmptyBatchError])
def test_every_refusal_is_an_invalid_input_and_a_value_error(error):
    with pytest.raises(InvalidInputError, match="record 2"):
        raise error("record 2 has no value for 'age'")
    assert issubclass(error, ValueError)


def test_a_wrong_type_is_also_a_type_error():
    assert issubclass(InvalidTypeError, TypeError)
    assert not issubclass(MissingFieldError, TypeError)
