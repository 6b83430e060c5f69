#!/usr/bin/env python3
"""Prepares a moto_server (a real AWS API emulator, PyPI `moto[server]`) started with
INITIAL_NO_AUTH_ACTION_COUNT=4 for signed ECR calls: the unauthenticated calls create an IAM user
with an `ecr:*` policy and an access key; then, signed with that key, it asks for an ECR
authorization token. Prints JSON: {"key_id", "secret", "password"} where password is the decoded
token's password (what the registry must accept for user AWS).

usage: moto_setup.py ENDPOINT        (run with the venv's python, which has boto3)
"""
import base64
import json
import sys

import boto3

endpoint = sys.argv[1]
anon = dict(endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **anon)
iam.create_user(UserName="tagpilot")
iam.put_user_policy(UserName="tagpilot", PolicyName="ecr", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
}))
key = iam.create_access_key(UserName="tagpilot")["AccessKey"]
ecr = boto3.client("ecr", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
user, password = base64.b64decode(token).decode().split(":", 1)
assert user == "AWS", user
print(json.dumps({"key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"], "password": password}))
