"""Errors the emulator returns, shaped like Alibaba Cloud's own."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer of an RPC or OSS API.

    Example::

        raise ApiError("InvalidImageId.NotFound", "The specified ImageId does not exist.", 404)
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def missing_parameter(name: str) -> ApiError:
    return ApiError(f"MissingParameter.{name}" if name else "MissingParameter",
                    f"The input parameter \"{name}\" that is mandatory for processing this request is not supplied.",
                    400)


def invalid_parameter(name: str, detail: str = "") -> ApiError:
    msg = f"The specified parameter \"{name}\" is not valid."
    if detail:
        msg += f" {detail}"
    return ApiError(f"InvalidParameter.{name}" if name else "InvalidParameter", msg, 400)


def not_found(code: str, what: str) -> ApiError:
    return ApiError(code, f"The specified {what} does not exist.", 404)
