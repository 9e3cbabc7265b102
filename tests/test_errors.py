import inspect

from importstate import errors


def test_every_error_class_is_exported():
    defined = {
        name for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    }
    assert set(errors.__all__) == defined
