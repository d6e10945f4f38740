"""Create the deployment's S3 buckets if they are missing, then check that each is reachable.

Run once by the create-buckets service before MLflow and Airflow start. boto3 takes the
endpoint and the credentials from AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY. BUCKETS is a comma-separated list of bucket names.
"""

from __future__ import annotations

import logging
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger("create-buckets")

# Error codes that S3 servers return from CreateBucket when the bucket exists already.
EXISTING_BUCKET_CODES = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def parse_bucket_names(raw: str) -> list[str]:
    return [name.strip() for name in raw.split(",") if name.strip()]


def ensure_bucket(client, name: str) -> None:
    try:
        client.create_bucket(Bucket=name)
        logger.info("Created bucket %s", name)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code not in EXISTING_BUCKET_CODES:
            raise
        logger.info("Bucket %s exists already", name)
    # HeadBucket fails unless these credentials can use the bucket, which CreateBucket's
    # BucketAlreadyExists does not prove.
    client.head_bucket(Bucket=name)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    names = parse_bucket_names(os.environ.get("BUCKETS", ""))
    if not names:
        logger.error("BUCKETS is empty. Expected a comma-separated list of bucket names")
        return 2
    # Path-style addressing, because the object store is reached by its service name and
    # cannot serve bucket subdomains.
    client = boto3.client(
        "s3",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 8},
            connect_timeout=10,
            read_timeout=30,
        ),
    )
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3", "the default AWS endpoint")
    for name in names:
        try:
            ensure_bucket(client, name)
        except (BotoCoreError, ClientError) as error:
            logger.error("Failed to create or reach bucket %s at %s: %s", name, endpoint, error)
            return 1
    logger.info("All %d buckets are ready: %s", len(names), ", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
