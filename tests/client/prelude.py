# Prelude for the integration tests' S3 client: boto3, signing for real.
# A test appends its own lines; they print one JSON document to stdout.
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["GK_ENDPOINT"]
ACCESS_KEY = os.environ["GK_ACCESS_KEY"]
SECRET_KEY = os.environ["GK_SECRET_KEY"]


def client(xff=None, addressing="path", headers=None):
    """A boto3 S3 client through the gate; `xff` pretends to come through a
    trusted proxy from that address, `headers` are added before signing."""
    c = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": addressing},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )
    extra = dict(headers or {})
    if xff:
        extra["X-Forwarded-For"] = xff
    if extra:
        def add(request, **_):
            for k, v in extra.items():
                request.headers[k] = v
        c.meta.events.register("before-sign.s3.*", add)
    return c


def attempt(fn, *args, **kwargs):
    """Runs one call; returns {"ok": True, ...} or the S3 error the SDK parsed."""
    try:
        r = fn(*args, **kwargs)
        meta = r.get("ResponseMetadata", {}) if isinstance(r, dict) else {}
        return {
            "ok": True,
            "status": meta.get("HTTPStatusCode"),
            "headers": meta.get("HTTPHeaders", {}),
            "result": r,
        }
    except ClientError as e:
        return {
            "ok": False,
            "code": e.response.get("Error", {}).get("Code"),
            "message": e.response.get("Error", {}).get("Message"),
            "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
            "headers": e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}),
        }


def out(value):
    json.dump(value, sys.stdout, default=str)
    sys.stdout.write("\n")
