"""OSS's errors: the constructors handlers raise, and the translation of errors raised by shared code.

An OSS error is an :class:`~emulator.errors.ApiError` whose ``extra`` carries the error-center code ``EC``
and the error's own fields (``BucketName``, ``Key``...); :mod:`emulator.oss.pipeline` renders it as XML.
"""

from __future__ import annotations

from ..errors import ApiError
from ..security import MAX_OBJECT_SIZE, MAX_XML_BODY

MALFORMED = "The XML you provided was not well-formed or did not validate against our published schema."


def err(code: str, message: str, status: int, ec: str = "0000-00000000", **extra) -> ApiError:
    return ApiError(code, message, status, extra={"EC": ec, **extra})


def no_such_bucket(bucket: str) -> ApiError:
    return err("NoSuchBucket", "The specified bucket does not exist.", 404, "0015-00000101", BucketName=bucket)


def no_such_key(key: str) -> ApiError:
    return err("NoSuchKey", "The specified key does not exist.", 404, "0026-00000001", Key=key)


def no_such_upload(upload_id: str) -> ApiError:
    return err("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload "
               "may have been aborted or completed.", 404, "0042-00000002", UploadId=upload_id)


def no_such_lifecycle(bucket: str) -> ApiError:
    return err("NoSuchLifecycle", "The lifecycle configuration does not exist.", 404, BucketName=bucket)


def invalid_argument(message: str, name: str = "", value: str = "") -> ApiError:
    extra = {"ArgumentName": name, "ArgumentValue": value} if name else {}
    return err("InvalidArgument", message, 400, "0017-00000000", **extra)


def invalid_digest() -> ApiError:
    return err("InvalidDigest", "The Content-MD5 you specified is not valid.", 400, "0016-00000403")


def invalid_range(requested: str, size: int) -> ApiError:
    return err("InvalidRange", "The requested range cannot be satisfied", 416, "0026-00000002",
               RangeRequested=requested, ActualObjectSize=size)


def access_denied(message: str = "You have no right to access this object because of bucket acl.") -> ApiError:
    return err("AccessDenied", message, 403, "0003-00000001")


def entity_too_large(limit: int = MAX_OBJECT_SIZE) -> ApiError:
    return err("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.", 400,
               MaxSizeAllowed=limit)


def xml_too_large() -> ApiError:
    return err("MalformedXML", f"The XML you provided is larger than {MAX_XML_BODY} bytes.", 400)


def method_not_allowed() -> ApiError:
    return err("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)


def not_implemented(message: str) -> ApiError:
    return err("NotImplemented", message, 501)


def internal_error() -> ApiError:
    return err("InternalError", "We encountered an internal error. Please try again.", 500)


def as_oss_error(exc: ApiError) -> ApiError:
    """Translate errors raised by shared code (RAM checks, fault injection) into OSS's codes."""
    if exc.code == "Forbidden.RAM":  # OSS's shape: AccessDenied with the same AccessDeniedDetail (AuthAction)
        detail = exc.extra.get("AccessDeniedDetail", {})
        if detail.get("NoPermissionType") == "ExplicitDeny":
            return err("AccessDenied", "Access denied by bucket policy.", 403, "0003-00000201",
                       AccessDeniedDetail=detail)
        return err("AccessDenied", "You have no right to access this object because of bucket acl.", 403,
                   "0003-00000001", AccessDeniedDetail=detail)
    if exc.code.startswith("Throttling"):
        return err("ServerBusy", "Please reduce your request rate.", 503, "0003-00000503")
    return exc
